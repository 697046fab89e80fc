//! The `meshd-cni` plugin driven by hand, as the CNI spec says a runtime drives it: ADD, CHECK,
//! DEL (twice, with a grace, after the namespace is gone, with meshd down), VERSION, STATUS,
//! GC, and bad input of every kind, against a real meshd.

use std::time::Duration;

use meshd_tests::cni::{plugin_config, CniCall};
use meshd_tests::command::stdout;
use meshd_tests::Cluster;
use serde_json::{json, Value};

/// CNI's error codes (spec section 5) and meshd-cni's own.
const INCOMPATIBLE_VERSION: u64 = 1;
const UNSUPPORTED_FIELD: u64 = 2;
const INVALID_ENV: u64 = 4;
const DECODE_FAILURE: u64 = 6;
const INVALID_CONFIG: u64 = 7;
const TRY_AGAIN_LATER: u64 = 11;
const NOT_AVAILABLE: u64 = 50;
const CHECK_FAILED: u64 = 101;

#[test]
fn the_plugin_follows_the_spec() {
    let mut cluster = Cluster::new("cni", 1);
    cluster.form();
    let socket = cluster.node(1).socket().to_path_buf();
    let names: Vec<String> = (1..=7).map(|i| cluster.add_namespace(&format!("c{i}"))).collect();
    let path = |i: usize| format!("/run/netns/{}", names[i - 1]);
    let n1 = cluster.node(1);
    n1.meshctl_ok(&["network", "create", "front", "--subnet", "10.88.0.0/24"]);
    n1.meshctl_ok(&["service", "create", "web", "--network", "front", "--publish", "8088:80"]);
    let conf = |version: &str, extra: Value| plugin_config(version, "front", "front", &socket, extra);

    // VERSION: the asked version echoed, what is supported listed.
    let version = CniCall::new("VERSION", "", "", "").run(r#"{"cniVersion":"1.0.0"}"#).ok();
    assert_eq!(version["cniVersion"], "1.0.0");
    assert_eq!(version["supportedVersions"], json!(["0.4.0", "1.0.0", "1.1.0"]));

    // STATUS: meshd is there and has the network.
    let status = CniCall::new("STATUS", "", "", "").run(&conf("1.1.0", json!({})));
    assert!(status.success && status.output.is_null(), "{status:?}");

    // ADD: the interface in the sandbox under CNI_IFNAME, the address with prefix and gateway,
    // the default route, the MTU, DNS at 127.0.0.11; a task of the service named by the pod name.
    let ns1 = names[0].clone();
    let path1 = path(1);
    let add = CniCall::new("ADD", "c1", &path1, "net0")
        .args("IgnoreUnknown=1;K8S_POD_NAME=web-a;MESHD_SERVICE=web");
    let result = add.run(&conf("1.1.0", json!({}))).ok();
    assert_eq!(result["cniVersion"], "1.1.0");
    let inside = &result["interfaces"][1];
    assert_eq!((inside["name"].as_str(), inside["sandbox"].as_str()), (Some("net0"), Some(path1.as_str())));
    assert_eq!(inside["mtu"], 1450);
    assert!(result["interfaces"][0]["name"].as_str().unwrap().starts_with("md"), "{result}");
    let address = result["ips"][0]["address"].as_str().unwrap().to_string();
    assert!(address.starts_with("10.88.0.") && address.ends_with("/24"), "{result}");
    assert_eq!(result["ips"][0]["gateway"], "10.88.0.1");
    assert_eq!(result["ips"][0]["interface"], 1);
    assert_eq!(result["routes"], json!([{"dst": "0.0.0.0/0", "gw": "10.88.0.1"}]));
    assert_eq!(result["dns"]["nameservers"], json!(["127.0.0.11"]));
    let ip = address.trim_end_matches("/24").to_string();
    let shown = stdout(&cluster.namespace(&ns1).ip(["-o", "addr", "show", "dev", "net0"]));
    assert!(shown.contains(&address), "{shown}");
    let ps = n1.meshctl_ok(&["service", "ps", "web"]);
    assert!(ps.contains("web-a") && ps.contains(&ip), "{ps}");
    let dig = cluster.namespace(&ns1).exec("dig", ["+short", "+time=2", "@127.0.0.11", "web-a"]);
    assert_eq!(stdout(&dig).trim(), ip, "the task's name resolves inside");

    // The same ADD again gets the same attachment (a runtime retrying).
    let again = add.run(&conf("1.1.0", json!({}))).ok();
    assert_eq!(again["ips"][0]["address"], address.as_str());

    // CHECK against the ADD's result: whole. Then break it behind meshd's back: CHECK says so.
    let check = CniCall::new("CHECK", "c1", &path1, "net0").args("IgnoreUnknown=1");
    check.run(&conf("1.1.0", json!({ "prevResult": result }))).ok();
    let mut other = result.clone();
    other["ips"][0]["address"] = json!("10.88.0.250/24");
    let wrong = check.run(&conf("1.1.0", json!({ "prevResult": other })));
    assert_eq!(wrong.code(), CHECK_FAILED, "{}", wrong.message());
    cluster.namespace(&ns1).ip(["addr", "del", &address, "dev", "net0"]);
    let broken = check.run(&conf("1.1.0", json!({ "prevResult": result })));
    assert_eq!(broken.code(), CHECK_FAILED);
    assert!(broken.message().contains("does not have its address"), "{}", broken.message());

    // DEL twice: both succeed, the task leaves the service, the interface is gone.
    let del = CniCall::new("DEL", "c1", &path1, "net0").args("IgnoreUnknown=1");
    del.run(&conf("1.1.0", json!({ "prevResult": result }))).ok();
    del.run(&conf("1.1.0", json!({}))).ok();
    assert!(!n1.meshctl_ok(&["service", "ps", "web"]).contains("web-a"));
    assert!(!cluster.namespace(&ns1).exec("ip", ["link", "show", "net0"]).status.success());
    let after = check.run(&conf("1.1.0", json!({ "prevResult": result })));
    assert_eq!(after.code(), CHECK_FAILED, "CHECK after DEL finds nothing");

    // Older configurations get results of their version.
    let path2 = path(2);
    let old = CniCall::new("ADD", "c2", &path2, "eth0").run(&conf("0.4.0", json!({}))).ok();
    assert_eq!((old["cniVersion"].as_str(), old["ips"][0]["version"].as_str()), (Some("0.4.0"), Some("4")));
    assert!(old["interfaces"][1].get("mtu").is_none());
    let v1 = CniCall::new("ADD", "c3", &path(3), "eth0").run(&conf("1.0.0", json!({}))).ok();
    assert!(v1["ips"][0].get("version").is_none() && v1["interfaces"][1].get("mtu").is_none(), "{v1}");
    // The container ID names the task when there is no pod name.
    assert!(n1.meshctl_ok(&["attachment", "ls"]).contains("cni/front/c3/eth0"));

    // GC: c2 stays valid, c3 does not (either key for the list, as libcni sends both).
    let gc = CniCall::new("GC", "", "", "");
    gc.run(&conf("1.1.0", json!({ "cni.dev/valid-attachments": [{"containerID": "c2", "ifname": "eth0"}] })))
        .ok();
    let listed = n1.meshctl_ok(&["attachment", "ls"]);
    assert!(listed.contains("cni/front/c2/eth0") && !listed.contains("cni/front/c3/"), "{listed}");
    gc.run(&conf("1.1.0", json!({ "cni.dev/attachments": [] }))).ok();
    assert!(!n1.meshctl_ok(&["attachment", "ls"]).contains("cni/front/"), "GC released c2 too");
    let no_list = gc.run(&conf("1.1.0", json!({})));
    assert_eq!(no_list.code(), INVALID_CONFIG, "GC without a list releases nothing");

    // DEL after the namespace is gone (podman's late DEL, ctr's DEL without CNI_NETNS).
    let ns4 = names[3].clone();
    let path4 = path(4);
    CniCall::new("ADD", "c4", &path4, "eth0").run(&conf("1.0.0", json!({}))).ok();
    meshd_tests::command::run("ip", ["netns", "del", &ns4]);
    CniCall::new("DEL", "c4", "", "eth0").run(&conf("1.0.0", json!({}))).ok();
    assert!(!n1.meshctl_ok(&["attachment", "ls"]).contains("cni/front/c4/"));
    meshd_tests::command::run("ip", ["netns", "add", &ns4]); // for the guard to delete

    // DEL with MESHD_GRACE: the task drains (terminating, no new flows) for the grace, then goes.
    let path5 = path(5);
    CniCall::new("ADD", "c5", &path5, "eth0")
        .args("MESHD_SERVICE=web;MESHD_TASK=web-g")
        .run(&conf("1.0.0", json!({})))
        .ok();
    let graceful = {
        let config = conf("1.0.0", json!({}));
        let call = CniCall::new("DEL", "c5", &path5, "eth0")
            .args("MESHD_SERVICE=web;MESHD_TASK=web-g;MESHD_GRACE=2s");
        std::thread::spawn(move || call.run(&config))
    };
    cluster.wait_for("the task terminating", Duration::from_secs(10), |c| {
        c.node(1).meshctl_ok(&["service", "ps", "web"]).contains("terminating")
    });
    let done = graceful.join().unwrap();
    assert!(done.elapsed >= Duration::from_secs(2), "DEL returned after {:?}", done.elapsed);
    done.ok();
    assert!(!n1.meshctl_ok(&["service", "ps", "web"]).contains("web-g"));

    // Bad input: each refused with the spec's code and a message naming the problem.
    let path6 = path(6);
    let add6 = CniCall::new("ADD", "c6", &path6, "eth0");
    let cases: Vec<(CniCall, String, u64, &str)> = vec![
        (add6.clone(), "{not json".into(), DECODE_FAILURE, "stdin"),
        (add6.clone(), conf("0.3.1", json!({})), INCOMPATIBLE_VERSION, "0.3.1"),
        (
            add6.clone(),
            json!({"cniVersion": "1.0.0", "name": "front"}).to_string(),
            INVALID_CONFIG,
            "\"network\"",
        ),
        (
            add6.clone(),
            plugin_config("1.0.0", "front", "nowhere", &socket, json!({})),
            INVALID_CONFIG,
            "nowhere",
        ),
        (CniCall::new("ADD", "c6", &path6, ""), conf("1.0.0", json!({})), INVALID_ENV, "CNI_IFNAME"),
        (
            CniCall::new("ADD", "c6", "/run/netns/none-such", "eth0"),
            conf("1.0.0", json!({})),
            INVALID_ENV,
            "CNI_NETNS",
        ),
        (add6.clone().args("FOO=bar"), conf("1.0.0", json!({})), UNSUPPORTED_FIELD, "FOO=bar"),
        (
            add6.clone().args("IgnoreUnknown=1;IP=10.88.0.77"),
            conf("1.0.0", json!({})),
            UNSUPPORTED_FIELD,
            "IP=10.88.0.77",
        ),
        (
            add6.clone(),
            conf(
                "1.0.0",
                json!({"runtimeConfig": {"portMappings": [{"hostPort": 9999, "containerPort": 80, "protocol": "tcp"}]}}),
            ),
            UNSUPPORTED_FIELD,
            "9999:80/tcp",
        ),
    ];
    for (call, config, code, needle) in cases {
        let outcome = call.run(&config);
        assert_eq!(outcome.code(), code, "{config}: {}", outcome.message());
        assert!(outcome.message().contains(needle), "{config}: {}", outcome.message());
        assert!(outcome.output["cniVersion"].as_str().is_some(), "{}", outcome.output);
    }
    assert!(!n1.meshctl_ok(&["attachment", "ls"]).contains("cni/front/c6/"), "nothing was attached");
    // A port mapping the service publishes, or an alias naming the service, is meaningful.
    let mapped = add6
        .run(&conf(
            "1.0.0",
            json!({"runtimeConfig": {
                "aliases": {"front": ["0123abcd", "web"]},
                "portMappings": [{"hostPort": 8088, "containerPort": 80, "protocol": "tcp"}]}}),
        ))
        .ok();
    assert!(mapped["ips"][0]["address"].is_string());
    assert!(n1.meshctl_ok(&["service", "ps", "web"]).contains("c6"), "the alias made it a task of web");

    // meshd down: STATUS says not available, ADD try again later, DEL still succeeds.
    cluster.node_mut(1).stop();
    let status = CniCall::new("STATUS", "", "", "").run(&conf("1.1.0", json!({})));
    assert_eq!(status.code(), NOT_AVAILABLE, "{}", status.message());
    let down = CniCall::new("ADD", "c7", &path(7), "eth0").run(&conf("1.0.0", json!({})));
    assert_eq!(down.code(), TRY_AGAIN_LATER, "{}", down.message());
    assert!(down.message().contains("not reachable"), "{}", down.message());
    CniCall::new("DEL", "c6", &path6, "eth0").run(&conf("1.0.0", json!({}))).ok();
}

/// The reaper: a namespace deleted without any DEL (ctr never sends one for `run -d`) leaves
/// meshd's state within a few seconds, and so does its task.
#[test]
fn attachments_of_vanished_namespaces_are_released() {
    let mut cluster = Cluster::new("cnireap", 1);
    cluster.form();
    let socket = cluster.node(1).socket().to_path_buf();
    cluster.node(1).meshctl_ok(&["network", "create", "front", "--subnet", "10.89.0.0/24"]);
    cluster.node(1).meshctl_ok(&["service", "create", "web", "--network", "front"]);
    let ns = cluster.add_namespace("gone");
    let path = cluster.namespace(&ns).path();
    CniCall::new("ADD", "gone1", &path, "eth0")
        .args("MESHD_SERVICE=web")
        .run(&plugin_config("1.0.0", "front", "front", &socket, json!({})))
        .ok();
    assert!(cluster.node(1).meshctl_ok(&["service", "ps", "web"]).contains("gone1"));
    meshd_tests::command::run("ip", ["netns", "del", &ns]);
    cluster.wait_for("the vanished task released", Duration::from_secs(15), |c| {
        !c.node(1).meshctl_ok(&["service", "ps", "web"]).contains("gone1")
            && !c.node(1).meshctl_ok(&["attachment", "ls"]).contains("gone1")
    });
    meshd_tests::command::run("ip", ["netns", "add", &ns]); // for the guard to delete
}
