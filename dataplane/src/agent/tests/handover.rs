//! `attach_handover`: a reserved address, the pair made for the runtime to move, the same
//! commit as `attach`; and nothing left behind when a step fails.

use std::net::Ipv4Addr;

use super::Harness;
use crate::agent::handover::Handover;
use crate::agent::AgentError;
use crate::network::attachment::DnsPlacement;

fn request(h: &Harness, owner: &str, address: Ipv4Addr) -> Handover {
    Handover {
        owner: owner.into(),
        network: "front".into(),
        address,
        netns: h.dir.join("ns").join(owner.replace('/', "-")),
        service: None,
        task: Some("db".into()),
        mac: Some([2, 0, 0, 0, 9, 9]),
        health: Default::default(),
    }
}

#[tokio::test]
async fn handover_publishes_the_reserved_address_on_a_new_pair() {
    let h = Harness::new();
    let reserved = h.agent.reserve("docker/ep1", "front").await.unwrap();
    let attached = h.agent.attach_handover(request(&h, "docker/ep1", reserved.address)).await.unwrap();
    assert_eq!(attached.address, reserved.address);
    assert_eq!(attached.dns, DnsPlacement::Node);
    assert_eq!(attached.container_mac, [2, 0, 0, 0, 9, 9]);
    // Both ends on the node until the runtime moves the peer; programs on the node side.
    let names: Vec<String> = h.links.state().node.keys().cloned().collect();
    assert_eq!(names, vec![attached.host_ifname.clone(), format!("p{}", attached.host_ifname)]);
    assert!(h.maps.state().programs.contains(&attached.host_ifname));
    let endpoint = &h.endpoints()[&attached.id];
    assert_eq!((endpoint.address, endpoint.task.as_deref()), (reserved.address, Some("db")));
    // DNS is the node's, not a listener in the namespace.
    assert!(h.dns.served(&attached.netns).is_none());
    assert_eq!(h.saved(), vec![attached.clone()]);

    // A runtime retrying the call gets the same attachment, and no second pair.
    let again = h.agent.attach_handover(request(&h, "docker/ep1", reserved.address)).await.unwrap();
    assert_eq!(again, attached);
    assert_eq!(h.links.state().node.len(), 2);
}

#[tokio::test]
async fn handover_needs_a_reserved_address_free_of_attachments() {
    let h = Harness::new();
    let unreserved = h.agent.attach_handover(request(&h, "docker/ep2", Ipv4Addr::new(10, 1, 0, 50))).await;
    assert!(matches!(unreserved, Err(AgentError::BadRequest(_))), "{unreserved:?}");
    let reserved = h.agent.reserve("docker/ep2", "front").await.unwrap();
    h.agent.attach_handover(request(&h, "docker/ep2", reserved.address)).await.unwrap();
    // Another owner asking for the same (reserved, now attached) address.
    let twice = h.agent.attach_handover(request(&h, "docker/ep3", reserved.address)).await;
    assert!(matches!(twice, Err(AgentError::BadRequest(_))), "{twice:?}");
    assert_eq!(h.endpoints().len(), 1);
    assert_eq!(h.links.state().node.len(), 2);
}

#[tokio::test]
async fn handover_rolls_back_the_pair_when_the_programs_cannot_be_attached() {
    let h = Harness::new();
    let reserved = h.agent.reserve("docker/ep4", "front").await.unwrap();
    h.maps.state().fail_attach = true;
    let result = h.agent.attach_handover(request(&h, "docker/ep4", reserved.address)).await;
    assert!(matches!(result, Err(AgentError::Kernel(_))), "{result:?}");
    assert!(h.links.state().node.is_empty(), "both ends are removed");
    assert!(h.endpoints().is_empty());
    assert!(h.attachments().await.is_empty());
    // The reservation stays: the runtime may retry.
    assert_eq!(h.agent.reservations().await.len(), 1);
}

#[tokio::test]
async fn a_refused_gossip_write_is_an_error_and_the_attachment_is_kept_for_release() {
    let h = Harness::new();
    let reserved = h.agent.reserve("docker/ep5", "front").await.unwrap();
    h.cluster.fail_writes(true);
    let result = h.agent.attach_handover(request(&h, "docker/ep5", reserved.address)).await;
    assert!(matches!(result, Err(AgentError::Gossip(_))), "{result:?}");
    // Recorded (its pair exists), so a release finds and removes it.
    assert_eq!(h.attachments().await.len(), 1);
    h.cluster.fail_writes(false);
    assert_eq!(h.agent.release("docker/ep5", std::time::Duration::ZERO).await.unwrap(), 1);
    assert!(h.links.state().node.is_empty());
}
