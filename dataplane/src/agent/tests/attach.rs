//! `attach`: the pair wired, the programs on it, the endpoint published, DNS served; and
//! nothing left behind when a step fails.

use std::net::IpAddr;

use meshd_ebpf::net_order;

use super::Harness;
use crate::agent::attachments::AttachOptions;
use crate::agent::AgentError;

#[tokio::test]
async fn attach_leaves_the_kernel_and_the_state_holding_the_endpoint() {
    let h = Harness::new();
    let ns = h.netns("web1");
    let options = AttachOptions { task: Some("web.1".into()), resolv_conf: true, ..Default::default() };
    let attached = h.agent.attach_with(&ns, "front", options).await.unwrap();

    // The address comes from the block the managers granted (block 0 of front).
    assert!("10.1.0.0/24".parse::<ipnet::Ipv4Net>().unwrap().contains(&attached.address));
    assert_eq!(h.decisions.grants.lock().unwrap().as_slice(), &[("front".to_string(), 0)]);
    // Kernel: the node side exists with programs, the interface inside holds the address.
    let links = h.links.state();
    assert_eq!(links.node.get(&attached.host_ifname), Some(&attached.host_ifindex));
    assert_eq!(
        links.inside.get(&(attached.netns.clone(), "eth0".to_string())),
        Some(&vec![IpAddr::V4(attached.address)])
    );
    drop(links);
    assert!(h.maps.state().programs.contains(&attached.host_ifname));
    // The forwarding maps hold the endpoint; nftables and the routes know the network.
    assert!(h.maps.state().forwarding.endpoints.contains_key(&net_order::ipv4(attached.address)));
    let host = h.host.state();
    assert_eq!(host.routes, vec!["10.1.0.0/24".parse().unwrap()]);
    assert_eq!(host.nftables.as_ref().unwrap().subnets, vec!["10.1.0.0/24".parse().unwrap()]);
    drop(host);
    // Cluster: the endpoint with its task; saved for a restart; DNS served in the namespace.
    let endpoints = h.endpoints();
    let endpoint = &endpoints[&attached.id];
    assert_eq!(
        (endpoint.address, endpoint.task.as_deref(), endpoint.terminating),
        (attached.address, Some("web.1"), false)
    );
    assert_eq!(h.saved(), vec![attached.clone()]);
    assert_eq!(h.dns.served(&attached.netns), Some(vec!["front".to_string()]));
}

#[tokio::test]
async fn two_attachments_get_different_addresses_and_interfaces() {
    let h = Harness::new();
    let ns = h.netns("two");
    h.add_network("back", "10.2.0.0/24", 5001);
    let (front, eth_front) = h.agent.attach(&ns, "front", None, None, false).await.unwrap();
    let (back, eth_back) = h.agent.attach(&ns, "back", None, None, false).await.unwrap();
    assert_ne!(eth_front, eth_back);
    assert!("10.2.0.0/24".parse::<ipnet::Ipv4Net>().unwrap().contains(&back));
    assert_ne!(front, back);
    let mut scope = h.dns.served(std::path::Path::new(&ns)).unwrap();
    scope.sort();
    assert_eq!(scope, vec!["back".to_string(), "front".to_string()]);
    // The same namespace on the same network again is refused.
    let again = h.agent.attach(&ns, "front", None, None, false).await;
    assert!(matches!(again, Err(AgentError::AlreadyAttached(..))), "{again:?}");
    assert_eq!(h.endpoints().len(), 2);
}

#[tokio::test]
async fn attach_rolls_back_the_pair_when_the_programs_cannot_be_attached() {
    let h = Harness::new();
    let ns = h.netns("refused");
    h.maps.state().fail_attach = true;
    let result = h.agent.attach(&ns, "front", None, None, false).await;
    assert!(matches!(result, Err(AgentError::Kernel(_))), "{result:?}");
    assert!(h.links.state().node.is_empty(), "the pair is removed");
    assert!(h.links.state().inside.is_empty());
    assert!(h.maps.state().programs.is_empty());
    assert!(h.endpoints().is_empty());
    assert!(h.attachments().await.is_empty());
    assert!(h.dns.served(std::path::Path::new(&ns)).is_none());
    // The kernel taking programs again, the same namespace attaches.
    h.maps.state().fail_attach = false;
    h.agent.attach(&ns, "front", None, None, false).await.unwrap();
    assert_eq!(h.endpoints().len(), 1);
}

#[tokio::test]
async fn bad_requests_change_nothing() {
    let h = Harness::new();
    let ns = h.netns("bad");
    let unknown = h.agent.attach(&ns, "nowhere", None, None, false).await;
    assert!(matches!(unknown, Err(AgentError::Network(_))), "{unknown:?}");
    let missing = h.agent.attach(&format!("{ns}-missing"), "front", None, None, false).await;
    assert!(matches!(missing, Err(AgentError::Netns(..))), "{missing:?}");
    let bad_task = h.agent.attach(&ns, "front", None, Some("no spaces allowed".into()), false).await;
    assert!(matches!(bad_task, Err(AgentError::Name(_))), "{bad_task:?}");
    let bad_ifname = AttachOptions { interface: Some("x".repeat(40)), ..Default::default() };
    assert!(matches!(h.agent.attach_with(&ns, "front", bad_ifname).await, Err(AgentError::BadRequest(_))));
    // The runtime's interface name already taken inside: a bad request, not a kernel error.
    h.links.state().inside.insert((ns.clone().into(), "eth5".into()), Vec::new());
    let taken = AttachOptions { interface: Some("eth5".into()), ..Default::default() };
    let taken = h.agent.attach_with(&ns, "front", taken).await;
    assert!(matches!(taken, Err(AgentError::BadRequest(_))), "{taken:?}");
    assert!(h.links.state().node.is_empty());
    assert!(h.endpoints().is_empty());
    assert!(h.attachments().await.is_empty());
}

#[tokio::test]
async fn no_address_block_left_is_exhausted_and_wires_nothing() {
    let h = Harness::new();
    let ns = h.netns("full");
    h.decisions.refuse_blocks.store(true, std::sync::atomic::Ordering::Relaxed);
    let result = h.agent.attach(&ns, "front", None, None, false).await;
    assert!(matches!(result, Err(AgentError::Exhausted(_))), "{result:?}");
    assert!(h.links.state().node.is_empty());
    assert!(h.endpoints().is_empty());
}

#[tokio::test]
async fn an_owner_gets_its_attachment_back_and_a_stale_one_is_replaced() {
    let h = Harness::new();
    let ns = h.netns("owned");
    let owned = |owner: &str| AttachOptions { owner: Some(owner.into()), ..Default::default() };
    let first = h.agent.attach_with(&ns, "front", owned("cni/front/c1/eth0")).await.unwrap();
    let repeated = h.agent.attach_with(&ns, "front", owned("cni/front/c1/eth0")).await.unwrap();
    assert_eq!(first, repeated, "a repeated ADD gets the same attachment");
    assert_eq!(h.links.state().node.len(), 1);
    // The container restarted in a new namespace while meshd missed the DEL.
    let moved = h.netns("owned-again");
    let second = h.agent.attach_with(&moved, "front", owned("cni/front/c1/eth0")).await.unwrap();
    assert_ne!(first.id, second.id);
    assert_eq!(h.endpoints().keys().cloned().collect::<Vec<_>>(), vec![second.id.clone()]);
    assert_eq!(h.links.state().node.keys().cloned().collect::<Vec<_>>(), vec![second.host_ifname.clone()]);
    assert!(h.dns.served(&first.netns).is_none());
}
