//! Network aliases (issue 21, item 6): more names of an endpoint on its network, from
//! `meshctl attach --alias` and from a runtime's `aliases` capability (podman's
//! `--network-alias`) through meshd-cni. Real meshd in namespaces, real dig and ping.

use meshd_tests::cni::{plugin_config, CniCall};
use meshd_tests::command::{stderr, stdout};
use meshd_tests::Cluster;
use serde_json::json;

#[test]
fn an_alias_resolves_on_its_network_to_every_endpoint_holding_it() {
    let mut cluster = Cluster::new("alias", 2);
    cluster.form();
    let n1 = cluster.node(1);
    n1.meshctl_ok(&["network", "create", "front", "--subnet", "10.96.0.0/24"]);
    n1.meshctl_ok(&["network", "create", "back", "--subnet", "10.97.0.0/24"]);
    n1.meshctl_ok(&["service", "create", "web", "--network", "front"]);
    cluster.wait_listed(&["service", "ls"], "web");
    let attach = |cluster: &mut Cluster, node: usize, tag: &str, network: &str, extra: &[&str]| {
        let ns = cluster.add_namespace(tag);
        let mut args = vec!["attach", "--netns", &ns, "--network", network];
        args.extend_from_slice(extra);
        let address = cluster.node(node).meshctl_ok(&args).trim().to_string();
        (ns, address)
    };
    // Two databases on n2 share "db"; one is also "primary". An alias named like the service
    // is accepted but gives no name: web is the service's.
    let (_, db1) = attach(&mut cluster, 2, "db1", "front", &["--alias", "db", "--alias", "primary"]);
    let (_, db2) = attach(&mut cluster, 2, "db2", "front", &["--alias", "db", "--alias", "web"]);
    let (client, _) = attach(&mut cluster, 1, "client", "front", &[]);
    let (other, _) = attach(&mut cluster, 1, "other", "back", &[]);
    cluster.wait_listed(&["--format", "json", "network", "ls"], "\"endpoints\": 3");

    let mut both = vec![db1.clone(), db2.clone()];
    both.sort();
    cluster.wait_for("db to resolve to both databases", std::time::Duration::from_secs(10), |c| {
        c.namespace(&client).resolve("db") == both
    });
    assert_eq!(cluster.namespace(&client).resolve("primary"), vec![db1.clone()]);
    assert_eq!(cluster.namespace(&client).resolve("primary.front"), vec![db1.clone()], "NAME.NETWORK too");
    let vip = cluster.namespace(&client).resolve("web");
    assert_eq!(vip.len(), 1);
    assert!(!vip.contains(&db2), "web stays the service's VIP: {vip:?}");
    assert!(cluster.namespace(&other).resolve("db").is_empty(), "another network does not see it");
    // A real client by the alias.
    let ping = cluster.namespace(&client).exec("ping", ["-c", "2", "-i", "0.2", "-W", "2", "primary"]);
    assert!(ping.status.success(), "ping primary: {}{}", stdout(&ping), stderr(&ping));
    let inspect = cluster.node(1).meshctl_ok(&["network", "inspect", "front"]);
    assert!(inspect.contains("db,primary"), "{inspect}");

    // Bad aliases: a clear error, nothing attached.
    let ns = cluster.add_namespace("bad");
    for (alias, why) in [("example.com", "public"), ("tasks.db", "tasks."), ("a b", "DNS labels")] {
        let out =
            cluster.node(1).meshctl(&["attach", "--netns", &ns, "--network", "front", "--alias", alias]);
        assert!(!out.status.success() && stderr(&out).contains(why), "{alias}: {}", stderr(&out));
    }
    let many: Vec<String> = (0..17).map(|i| format!("a{i}")).collect();
    let mut args = vec!["attach", "--netns", &ns, "--network", "front"];
    for alias in &many {
        args.extend(["--alias", alias]);
    }
    let out = cluster.node(1).meshctl(&args);
    assert!(!out.status.success() && stderr(&out).contains("at most 16 aliases"), "{}", stderr(&out));
    cluster.wait_listed(&["--format", "json", "network", "ls"], "\"endpoints\": 3");

    // podman's --network-alias through meshd-cni: its aliases capability.
    let socket = cluster.node(2).socket().to_path_buf();
    let pod = cluster.add_namespace("pod");
    let conf = plugin_config(
        "1.0.0",
        "front",
        "front",
        &socket,
        json!({"runtimeConfig": {"aliases": {"front": ["cache", "2ee2caada94b", "not a name"]}}}),
    );
    let result = CniCall::new("ADD", "2ee2caada94b", &format!("/run/netns/{pod}"), "eth0").run(&conf).ok();
    let address = result["ips"][0]["address"].as_str().unwrap().trim_end_matches("/24").to_string();
    cluster.wait_for("cache to resolve", std::time::Duration::from_secs(10), |c| {
        c.namespace(&client).resolve("cache") == vec![address.clone()]
    });
    assert_eq!(
        cluster.namespace(&client).resolve("2ee2caada94b"),
        vec![address],
        "the short ID, as Docker's"
    );
}
