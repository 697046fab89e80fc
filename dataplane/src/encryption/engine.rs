//! Bringing the node's WireGuard engine up: the kernel's `wireguard` link where the kernel has
//! the module, else `wireguard-go` (a process of its own, in its own process group, so it
//! outlives the agent as the pinned maps do: a restarted meshd finds it running and adopts it);
//! then the interface's MTU, reverse-path filter, and the rule and table that route marked VXLAN
//! packets into it.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use futures::TryStreamExt;
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkInfo};
use netlink_packet_route::route::RouteType;
use netlink_packet_route::rule::{RuleAction, RuleAttribute};
use rtnetlink::{Handle, IpVersion, LinkUnspec, LinkWireguard, RouteMessageBuilder};

use super::{wg, EncryptionError, EngineKind, MARK, RULE_PRIORITY, TABLE};
use crate::netlink::links::{self, netlink_err};

/// How long a started engine may take to answer on its control socket.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// The engine interface's own address (see [`wire`]): link-local, the same on every node.
pub const LINK_ADDRESS: Ipv4Addr = Ipv4Addr::new(169, 254, 51, 82);
/// The userspace engine's log, in the state directory (it logs no keys).
pub const LOG_FILE: &str = "wireguard-go.log";

/// Which engine runs `iface` now, if one does: the link's kind tells (a TUN is wireguard-go's).
pub async fn running(handle: &Handle, iface: &str) -> Result<Option<EngineKind>, EncryptionError> {
    let Some(link) = links::find(handle, iface).await? else {
        return Ok(None);
    };
    let kind = link.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Kind(kind) => Some(kind.clone()),
            _ => None,
        }),
        _ => None,
    });
    Ok(match kind {
        Some(InfoKind::Wireguard) => Some(EngineKind::Kernel),
        _ => Some(EngineKind::Userspace),
    })
}

/// Starts an engine for `iface`: the kernel's if the link can be made, else wireguard-go (its
/// output in `state_dir/wireguard-go.log`). Returns once `wg` can configure it.
pub async fn start(handle: &Handle, iface: &str, state_dir: &Path) -> Result<EngineKind, EncryptionError> {
    let kind = match handle.link().add(LinkWireguard::new(iface).build()).execute().await {
        Ok(()) => EngineKind::Kernel,
        Err(error) => {
            tracing::debug!(%error, "no kernel WireGuard; starting wireguard-go");
            spawn_userspace(iface, state_dir)?;
            EngineKind::Userspace
        }
    };
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        if wg::public_key(iface).await?.is_some() {
            return Ok(kind);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(EncryptionError::NotUp(START_TIMEOUT));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts `wireguard-go -f IFACE` detached from meshd's process group. Its environment is
/// meshd's less everything but PATH: nothing secret is handed to it.
fn spawn_userspace(iface: &str, state_dir: &Path) -> Result<(), EncryptionError> {
    let spawn_err = |source| EncryptionError::Spawn { program: "wireguard-go", what: "start", source };
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(state_dir.join(LOG_FILE))
        .map_err(spawn_err)?;
    let log_err = log.try_clone().map_err(spawn_err)?;
    let mut command = std::process::Command::new("wireguard-go");
    command
        .arg("-f")
        .arg(iface)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into()))
        .env("LOG_LEVEL", "error")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    // Its own process group: a signal to meshd's (a terminal's Ctrl-C, a supervisor stopping
    // meshd for a restart) does not take the tunnels down.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let child = command.spawn().map_err(spawn_err)?;
    tracing::info!(pid = child.id(), iface, "started wireguard-go");
    // Not waited on here: a thread reaps it when it exits (meshd gone, init does).
    std::thread::spawn(move || {
        let mut child = child;
        let _ = child.wait();
    });
    Ok(())
}

/// Brings the interface up with `mtu`, loosens its reverse-path filter (decrypted packets carry
/// the peer's underlay address, which the main table routes elsewhere), and routes the mark into
/// it: `ip rule fwmark MARK table TABLE`, and in TABLE `default dev IFACE` in front of
/// `unreachable default` (so marked packets never fall back to the main table's routes).
/// Returns the interface's ifindex.
pub async fn wire(handle: &Handle, iface: &str, mtu: u32) -> Result<u32, EncryptionError> {
    let link =
        links::find(handle, iface).await?.ok_or_else(|| links::LinkError::Missing(iface.to_string()))?;
    let index = link.header.index;
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).mtu(mtu).up().build())
        .execute()
        .await
        .map_err(netlink_err("bring up", iface))?;
    // The reverse-path filter refuses every packet arriving on an interface without an IPv4
    // address, loose mode too: the interface gets one, link-local, never routed anywhere (the
    // tunnel's packets keep the underlay addresses).
    let has_address =
        crate::netlink::addresses::of_link(handle, index).await?.contains(&IpAddr::V4(LINK_ADDRESS));
    if !has_address {
        handle
            .address()
            .add(index, IpAddr::V4(LINK_ADDRESS), 32)
            .execute()
            .await
            .map_err(netlink_err("add address", iface))?;
    }
    let rp_filter = format!("/proc/sys/net/ipv4/conf/{iface}/rp_filter");
    if let Err(error) = std::fs::write(&rp_filter, "2") {
        tracing::warn!(%error, path = rp_filter, "cannot loosen the reverse-path filter");
    }
    let unreachable = RouteMessageBuilder::<Ipv4Addr>::new()
        .table_id(TABLE)
        .kind(RouteType::Unreachable)
        .priority(u32::MAX)
        .build();
    handle
        .route()
        .add(unreachable)
        .replace()
        .execute()
        .await
        .map_err(netlink_err("add unreachable route", iface))?;
    let into_engine =
        RouteMessageBuilder::<Ipv4Addr>::new().table_id(TABLE).output_interface(index).priority(0).build();
    handle.route().add(into_engine).replace().execute().await.map_err(netlink_err("add route", iface))?;
    if !rule_present(handle).await? {
        handle
            .rule()
            .add()
            .v4()
            .fw_mark(MARK)
            .table_id(TABLE)
            .priority(RULE_PRIORITY)
            .action(RuleAction::ToTable)
            .execute()
            .await
            .map_err(netlink_err("add rule", iface))?;
    }
    Ok(index)
}

/// Whether the node already has the rule (a restart keeps it: adding it twice would make two).
async fn rule_present(handle: &Handle) -> Result<bool, EncryptionError> {
    let mut rules = handle.rule().get(IpVersion::V4).execute();
    while let Some(rule) = rules.try_next().await.map_err(netlink_err("list rules", "ipv4"))? {
        let has = |want: &RuleAttribute| rule.attributes.iter().any(|a| a == want);
        if has(&RuleAttribute::FwMark(MARK)) && has(&RuleAttribute::Table(TABLE)) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Stops the engine: deletes the interface (a userspace engine exits when its TUN goes).
pub async fn stop(handle: &Handle, iface: &str) -> Result<(), EncryptionError> {
    if links::find(handle, iface).await?.is_some() {
        links::delete(handle, iface).await?;
    }
    Ok(())
}
