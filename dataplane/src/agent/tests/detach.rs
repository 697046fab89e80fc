//! `detach` and `release`: everything an attachment made is gone afterwards, at once or after
//! a grace period during which its endpoint is terminating.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::Harness;
use crate::agent::attachments::AttachOptions;
use crate::agent::AgentError;

#[tokio::test]
async fn detach_removes_the_pair_the_programs_the_endpoint_and_dns() {
    let h = Harness::new();
    let ns = h.netns("gone");
    let kept_ns = h.netns("kept");
    let attached = h.agent.attach_with(&ns, "front", AttachOptions::default()).await.unwrap();
    let kept = h.agent.attach_with(&kept_ns, "front", AttachOptions::default()).await.unwrap();

    assert_eq!(h.agent.detach(&ns, None, Duration::ZERO).await.unwrap(), 1);
    assert!(!h.links.state().node.contains_key(&attached.host_ifname));
    assert!(!h.maps.state().programs.contains(&attached.host_ifname));
    assert!(!h.endpoints().contains_key(&attached.id));
    assert!(h.dns.served(Path::new(&ns)).is_none());
    assert_eq!(h.saved(), vec![kept.clone()]);
    // The other attachment is untouched.
    assert!(h.links.state().node.contains_key(&kept.host_ifname));
    assert!(h.endpoints().contains_key(&kept.id));
    assert_eq!(h.dns.served(Path::new(&kept_ns)), Some(vec!["front".to_string()]));
    // Its address is free again: the next attachment may get it.
    assert_eq!(h.agent.inner.lock().await.pending_addresses().len(), 1);

    let again = h.agent.detach(&ns, None, Duration::ZERO).await;
    assert!(matches!(again, Err(AgentError::NotAttached(..))), "{again:?}");
}

#[tokio::test]
async fn detach_from_one_network_keeps_the_other() {
    let h = Harness::new();
    h.add_network("back", "10.2.0.0/24", 5001);
    let ns = h.netns("both");
    h.agent.attach(&ns, "front", None, None, false).await.unwrap();
    h.agent.attach(&ns, "back", None, None, false).await.unwrap();
    assert_eq!(h.agent.detach(&ns, Some("front"), Duration::ZERO).await.unwrap(), 1);
    let left: Vec<String> = h.endpoints().values().map(|e| e.network.clone()).collect();
    assert_eq!(left, vec!["back".to_string()]);
    assert_eq!(h.dns.served(Path::new(&ns)), Some(vec!["back".to_string()]));
}

#[tokio::test]
async fn with_grace_the_endpoint_is_terminating_until_it_is_removed() {
    let h = Arc::new(Harness::new());
    let ns = h.netns("draining");
    let attached = h
        .agent
        .attach_with(&ns, "front", AttachOptions { service: None, ..Default::default() })
        .await
        .unwrap();
    let detaching = {
        let (h, ns) = (h.clone(), ns.clone());
        tokio::spawn(async move { h.agent.detach(&ns, None, Duration::from_millis(400)).await })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    // During the grace period: still wired, but terminating in the state.
    assert!(h.endpoints()[&attached.id].terminating);
    assert!(h.links.state().node.contains_key(&attached.host_ifname));
    assert_eq!(detaching.await.unwrap().unwrap(), 1);
    assert!(h.endpoints().is_empty());
    assert!(h.links.state().node.is_empty());
}

#[tokio::test]
async fn a_refused_link_removal_still_takes_the_endpoint_out_of_the_state() {
    let h = Harness::new();
    let ns = h.netns("stuck");
    let attached = h.agent.attach(&ns, "front", None, None, false).await.unwrap();
    h.links.state().fail_remove = true;
    let result = h.agent.detach(&ns, None, Duration::ZERO).await;
    assert!(matches!(result, Err(AgentError::Kernel(_))), "{result:?}");
    // A stale endpoint would keep receiving flows: it is gone, and so is the attachment.
    assert!(h.endpoints().is_empty());
    assert!(h.attachments().await.is_empty());
    assert!(!h.maps.state().forwarding.endpoints.contains_key(&meshd_ebpf::net_order::ipv4(attached.0)));
}

#[tokio::test]
async fn release_by_owner_is_repeatable() {
    let h = Harness::new();
    let ns = h.netns("cni");
    let options = AttachOptions { owner: Some("cni/front/c9/eth0".into()), ..Default::default() };
    h.agent.attach_with(&ns, "front", options).await.unwrap();
    // The namespace may be gone already when the runtime releases.
    std::fs::remove_file(&ns).unwrap();
    assert_eq!(h.agent.release("cni/front/c9/eth0", Duration::ZERO).await.unwrap(), 1);
    assert_eq!(h.agent.release("cni/front/c9/eth0", Duration::ZERO).await.unwrap(), 0);
    assert!(h.endpoints().is_empty());
    assert!(h.links.state().node.is_empty());
}
