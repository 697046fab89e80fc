//! The reaper (`Agent::reap`): attachments whose namespace or node-side veth vanished without
//! a detach are released; the others are left alone. Also `check`, which sees the same losses.

use super::Harness;
use crate::agent::attachments::AttachOptions;
use crate::agent::AgentError;

#[tokio::test]
async fn a_vanished_namespace_is_released_and_the_rest_kept() {
    let h = Harness::new();
    let gone_ns = h.netns("exited");
    let kept_ns = h.netns("running");
    let gone = h.agent.attach_with(&gone_ns, "front", AttachOptions::default()).await.unwrap();
    let kept = h.agent.attach_with(&kept_ns, "front", AttachOptions::default()).await.unwrap();
    assert_eq!(h.agent.reap().await.unwrap(), 0, "nothing vanished yet");

    std::fs::remove_file(&gone_ns).unwrap();
    assert_eq!(h.agent.reap().await.unwrap(), 1);
    assert!(!h.endpoints().contains_key(&gone.id));
    assert!(!h.links.state().node.contains_key(&gone.host_ifname));
    assert!(h.endpoints().contains_key(&kept.id));
    assert_eq!(h.saved(), vec![kept]);
}

#[tokio::test]
async fn a_namespace_path_naming_another_namespace_counts_as_gone() {
    let h = Harness::new();
    let ns = h.netns("recycled");
    h.agent.attach(&ns, "front", None, None, false).await.unwrap();
    // A recycled path: the file is another one now (made while the old one still existed, so
    // its inode differs, then renamed over it).
    let other = h.dir.join("ns").join("other");
    std::fs::write(&other, b"").unwrap();
    std::fs::rename(&other, &ns).unwrap();
    assert_eq!(h.agent.reap().await.unwrap(), 1);
    assert!(h.endpoints().is_empty());
}

#[tokio::test]
async fn a_vanished_veth_is_released_and_check_reports_it_first() {
    let h = Harness::new();
    let ns = h.netns("veth-lost");
    let options = AttachOptions { owner: Some("cni/front/c7/eth0".into()), ..Default::default() };
    let attached = h.agent.attach_with(&ns, "front", options).await.unwrap();
    assert_eq!(h.agent.check("cni/front/c7/eth0").await.unwrap(), attached);

    // Someone deletes the node side behind meshd's back.
    h.links.state().node.remove(&attached.host_ifname);
    let problem = h.agent.check("cni/front/c7/eth0").await;
    assert!(matches!(problem, Err(AgentError::Check { .. })), "{problem:?}");
    assert_eq!(h.agent.reap().await.unwrap(), 1);
    assert!(h.endpoints().is_empty());
    assert!(matches!(h.agent.check("cni/front/c7/eth0").await, Err(AgentError::NotOwned(_))));
}

#[tokio::test]
async fn an_attachment_whose_namespace_appears_later_is_identified_then_watched() {
    let h = Harness::new();
    // Docker's namespace file appears only after its Join.
    let reserved = h.agent.reserve("docker/late", "front").await.unwrap();
    let netns = h.dir.join("ns").join("late");
    let request = crate::agent::handover::Handover {
        owner: "docker/late".into(),
        network: "front".into(),
        address: reserved.address,
        netns: netns.clone(),
        service: None,
        task: None,
        mac: None,
        health: Default::default(),
    };
    let attached = h.agent.attach_handover(request).await.unwrap();
    assert_eq!(attached.netns_id, None);
    assert_eq!(h.agent.reap().await.unwrap(), 0, "an unknown namespace is not a gone one");
    std::fs::write(&netns, b"").unwrap();
    assert_eq!(h.agent.reap().await.unwrap(), 0);
    assert!(h.saved()[0].netns_id.is_some(), "identified and saved");
    std::fs::remove_file(&netns).unwrap();
    assert_eq!(h.agent.reap().await.unwrap(), 1);
    assert!(h.endpoints().is_empty());
}
