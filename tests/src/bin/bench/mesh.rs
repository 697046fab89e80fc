//! Service load balancing: wrk against nginx, (a) straight to a backend, (b) through the
//! service VIP, in the same run, with keep-alive and with a new connection per request.
//! The routing-mesh paths (published ports) are not built yet.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use meshd_tests::Cluster;

/// nginx in a namespace, serving a small page; stopped on drop.
struct Nginx {
    child: Child,
    dir: std::path::PathBuf,
}

impl Nginx {
    fn start(ns: &str, dir: std::path::PathBuf) -> Nginx {
        std::fs::create_dir_all(dir.join("html")).unwrap();
        std::fs::write(dir.join("html/index.html"), "hello from a backend\n").unwrap();
        let conf = format!(
            "worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log; daemon off;\n\
             events {{ worker_connections 4096; }}\n\
             http {{ access_log off; keepalive_requests 1000000;\n\
               client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};\n\
               server {{ listen 80; root {d}/html; }} }}\n",
            d = dir.display()
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "nginx", "-c"])
            .arg(dir.join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx (apt-get install nginx-light)");
        std::thread::sleep(Duration::from_millis(500));
        Nginx { child, dir }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Requests per second from wrk in `ns` against `url` (one thread, 32 connections, `secs`).
fn wrk(ns: &str, url: &str, secs: u32, close: bool) -> f64 {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, "wrk", "-t1", "-c32", &format!("-d{secs}s")]);
    if close {
        cmd.args(["-H", "Connection: close"]);
    }
    let out = cmd.arg(url).output().expect("wrk (apt-get install wrk)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

pub fn run_suite(quick: bool) {
    let secs = if quick { 2 } else { 8 };
    let mut cluster = Cluster::new("bmesh", 2);
    cluster.form();
    cluster.node(1).meshctl_ok(&["network", "create", "bench", "--subnet", "10.61.0.0/24"]);
    cluster.wait_for("the network on n2", Duration::from_secs(10), |c| {
        c.node(2).meshctl_ok(&["network", "ls"]).contains("bench")
    });
    let created =
        cluster.node(1).meshctl_ok(&["--format", "json", "service", "create", "web", "--network", "bench"]);
    let vip =
        serde_json::from_str::<serde_json::Value>(&created).unwrap()[0]["vip"].as_str().unwrap().to_string();
    cluster.wait_for("the service on n2", Duration::from_secs(10), |c| {
        c.node(2).meshctl_ok(&["service", "ls"]).contains("web")
    });
    let backend = cluster.add_namespace("backend");
    let backend_ip = cluster
        .node(2)
        .meshctl_ok(&["attach", "--netns", &backend, "--network", "bench", "--service", "web"])
        .trim()
        .to_string();
    let client = cluster.add_namespace("client");
    cluster.node(1).meshctl_ok(&["attach", "--netns", &client, "--network", "bench"]);
    let _nginx = Nginx::start(&backend, cluster.work_dir().join("nginx"));
    cluster.wait_for("the VIP answers", Duration::from_secs(15), |c| {
        c.namespace(&client)
            .exec("curl", ["-s", "--max-time", "2", &format!("http://{vip}/")])
            .status
            .success()
    });

    println!("\n## Service load balancing: wrk (1 thread, 32 connections, {secs} s) against nginx on another node\n");
    println!("| path | keep-alive req/s | ratio | new connection per request req/s | ratio |");
    println!("|---|---|---|---|---|");
    let direct = (
        wrk(&client, &format!("http://{backend_ip}/"), secs, false),
        wrk(&client, &format!("http://{backend_ip}/"), secs, true),
    );
    let via_vip = (
        wrk(&client, &format!("http://{vip}/"), secs, false),
        wrk(&client, &format!("http://{vip}/"), secs, true),
    );
    for (name, (keep, close)) in [
        ("(a) container to backend directly", direct),
        ("(b) through the service VIP (eBPF Maglev + conntrack)", via_vip),
    ] {
        println!("| {name} | {keep:.0} | {:.2} | {close:.0} | {:.2} |", keep / direct.0, close / direct.1);
    }
    println!("\n(c) published port and (d) the Swarm-style nftables mesh are not built yet: the routing mesh is still to come.");
}
