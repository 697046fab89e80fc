//! `reconcile`: the host's configuration follows the networks and is written only when it
//! changed; a refused write is retried by the next round.

use super::Harness;
use crate::agent::AgentError;

#[tokio::test]
async fn routes_and_nftables_follow_the_networks_and_are_written_once() {
    let h = Harness::new();
    h.agent.reconcile().await.unwrap();
    h.agent.reconcile().await.unwrap();
    assert_eq!(h.host.state().nftables_writes, 1, "an unchanged table is not written again");
    assert_eq!(h.host.state().routes, vec!["10.1.0.0/24".parse().unwrap()]);
    assert_eq!(h.host.state().reserved, Some(Vec::new()));
    assert_eq!(h.maps.state().syncs, 2);

    h.add_network("back", "10.2.0.0/24", 5001);
    h.agent.reconcile().await.unwrap();
    let expected: Vec<ipnet::Ipv4Net> = vec!["10.1.0.0/24".parse().unwrap(), "10.2.0.0/24".parse().unwrap()];
    assert_eq!(h.host.state().routes, expected);
    assert_eq!(h.host.state().nftables.as_ref().unwrap().subnets, expected);
    assert_eq!(h.host.state().nftables_writes, 2);
}

#[tokio::test]
async fn a_refused_nftables_write_fails_the_round_and_the_next_one_writes_it() {
    let h = Harness::new();
    h.host.state().fail_nftables = true;
    let result = h.agent.reconcile().await;
    assert!(matches!(result, Err(AgentError::Kernel(_))), "{result:?}");
    assert!(h.host.state().nftables.is_none());
    h.host.state().fail_nftables = false;
    h.agent.reconcile().await.unwrap();
    assert_eq!(h.host.state().nftables.as_ref().unwrap().subnets, vec!["10.1.0.0/24".parse().unwrap()]);
}

#[tokio::test]
async fn remote_endpoints_reach_the_forwarding_maps() {
    let h = Harness::new();
    let record = crate::state::EndpointRecord {
        network: "front".into(),
        address: "10.1.0.77".parse().unwrap(),
        service: None,
        task: None,
        terminating: false,
        aliases: Vec::new(),
        health: Default::default(),
    };
    let node2 = crate::fixture::id(2);
    h.cluster.apply(
        node2,
        vec![crate::state::Change::Endpoint { owner: node2, id: "r".into(), record: Some(record) }],
    );
    h.agent.reconcile().await.unwrap();
    let key = meshd_ebpf::net_order::ipv4("10.1.0.77".parse().unwrap());
    assert!(h.maps.state().forwarding.endpoints.contains_key(&key));
    h.cluster
        .apply(node2, vec![crate::state::Change::Endpoint { owner: node2, id: "r".into(), record: None }]);
    h.agent.reconcile().await.unwrap();
    assert!(!h.maps.state().forwarding.endpoints.contains_key(&key));
}
