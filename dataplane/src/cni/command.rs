//! The CNI operations, carried out by the node's meshd over its API socket.
//!
//! Every attachment is owned by `cni/NAME/CONTAINER/IFNAME` (NAME: the configuration's `name`),
//! so DEL, CHECK and GC find it without the namespace (ctr's DEL has none), and GC of one
//! configuration never touches another's.

use crate::name_rules::TaskName;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::args::CniArgs;
use super::config::NetConf;
use super::env::Invocation;
use super::error::{code, CniError};
use super::result;
use crate::api::client::ClientError;
use crate::api::error::ErrorKind;
use crate::api::reply::{AttachmentInfo, Reply, ServiceInfo};
use crate::api::request::Request;

/// How meshd-cni reaches meshd (the socket; tests use fakes).
pub trait Meshd {
    /// Sends `request`; `wait` is how much longer than usual the answer may take.
    fn call(&self, socket: &Path, request: &Request, wait: Duration) -> Result<Reply, ClientError>;
}

/// The owner key of one CNI attachment.
pub fn owner(name: &str, container_id: &str, ifname: &str) -> String {
    format!("cni/{name}/{container_id}/{ifname}")
}

/// ADD: attach the namespace; the result in the configuration's version.
pub fn add(meshd: &dyn Meshd, inv: &Invocation, args: &CniArgs, conf: &NetConf) -> Result<Value, CniError> {
    let (container_id, ifname, netns) = ids(inv);
    let netns = netns.unwrap_or_default();
    if std::fs::metadata(&netns).is_err() {
        return Err(CniError::new(
            code::INVALID_ENV,
            "invalid CNI_NETNS",
            format!("CNI_NETNS: network namespace {netns} does not exist"),
        ));
    }
    let networks = match call(meshd, conf, &Request::NetworkLs {}, Duration::ZERO)? {
        Reply::Networks(networks) => networks,
        other => return Err(unexpected(&other)),
    };
    if !networks.iter().any(|n| n.name == conf.network) {
        return Err(CniError::new(
            code::INVALID_CONFIG,
            "invalid network configuration",
            format!(
                "meshd has no network {:?} (create it once for the cluster: meshctl network create {} --subnet CIDR)",
                conf.network, conf.network
            ),
        ));
    }
    let service = choose_service(meshd, args, conf)?;
    let task = task_name(args, container_id);
    let aliases = dns_aliases(conf, service.as_deref(), &task);
    let task = TaskName::try_from(task)
        .map_err(|error| CniError::new(code::UNSUPPORTED_FIELD, "invalid MESHD_TASK", error.to_string()))?;
    let request = Request::Attach {
        netns: netns.clone(),
        network: conf.network.clone(),
        service,
        name: Some(task),
        // The result's dns entry tells the runtime; a named namespace's /etc/netns file is
        // not how containers get their resolv.conf.
        no_resolv_conf: true,
        interface: Some(ifname.to_string()),
        owner: Some(owner(&conf.name, container_id, ifname)),
        aliases,
        // CNI has no health of its own: the runtime or operator reports it with `task_health`.
        health: None,
    };
    match call(meshd, conf, &request, Duration::ZERO)? {
        Reply::Attached { attachment: Some(attachment), .. } => {
            Ok(result::add_result(conf.version, &attachment, ifname, &netns, conf.prev_result.as_ref()))
        }
        other => Err(unexpected(&other)),
    }
}

/// DEL: release the attachment, after MESHD_GRACE if given. Succeeds when there is nothing to
/// release, and when meshd is not running (it releases attachments whose namespace is gone
/// when it starts, and every few seconds while it runs).
pub fn del(meshd: &dyn Meshd, inv: &Invocation, args: &CniArgs, conf: &NetConf) -> Result<(), CniError> {
    let (container_id, ifname, _) = ids(inv);
    let grace = args.grace.unwrap_or_default();
    let request = Request::Release {
        owner: owner(&conf.name, container_id, ifname),
        grace_ms: grace.as_millis().min(u128::from(u64::MAX)) as u64,
    };
    match meshd.call(&conf.socket, &request, grace) {
        Ok(_) => Ok(()),
        Err(error @ ClientError::Connect { .. }) => {
            eprintln!("meshd-cni: {error}; meshd releases the attachment when it finds the namespace gone");
            Ok(())
        }
        Err(error) => Err(client_error(conf, error)),
    }
}

/// CHECK: meshd checks the attachment against the kernel; its address against the ADD result.
pub fn check(meshd: &dyn Meshd, inv: &Invocation, conf: &NetConf) -> Result<(), CniError> {
    let (container_id, ifname, _) = ids(inv);
    let request = Request::AttachmentCheck { owner: owner(&conf.name, container_id, ifname) };
    let attachment: AttachmentInfo = match meshd.call(&conf.socket, &request, Duration::ZERO) {
        Ok(Reply::Attachments(mut list)) if list.len() == 1 => list.remove(0),
        Ok(other) => return Err(unexpected(&other)),
        Err(ClientError::Api(error)) if matches!(error.kind, ErrorKind::NotFound | ErrorKind::Conflict) => {
            return Err(CniError::new(code::CHECK_FAILED, "the attachment is not whole", error.message))
        }
        Err(error) => return Err(client_error(conf, error)),
    };
    if let Some(prev) = &conf.prev_result {
        result::check_against(prev, &attachment, ifname)?;
    }
    Ok(())
}

/// STATUS: ready when meshd answers and has the network.
pub fn status(meshd: &dyn Meshd, conf: &NetConf) -> Result<(), CniError> {
    let not_available =
        |details: String| CniError::new(code::NOT_AVAILABLE, "meshd-cni cannot add containers now", details);
    match meshd.call(&conf.socket, &Request::NetworkLs {}, Duration::ZERO) {
        Ok(Reply::Networks(networks)) if networks.iter().any(|n| n.name == conf.network) => Ok(()),
        Ok(Reply::Networks(_)) => Err(not_available(format!("meshd has no network {:?}", conf.network))),
        Ok(other) => Err(unexpected(&other)),
        Err(error) => Err(not_available(error.to_string())),
    }
}

/// GC: release this configuration's attachments that are not in the valid list. Goes on after
/// a failure and reports every failure at the end.
pub fn gc(meshd: &dyn Meshd, conf: &NetConf) -> Result<(), CniError> {
    let Some(valid) = &conf.valid_attachments else {
        return Err(CniError::new(
            code::INVALID_CONFIG,
            "invalid network configuration",
            "GC needs \"cni.dev/valid-attachments\" (without it every attachment would look stale)",
        ));
    };
    let prefix = format!("cni/{}/", conf.name);
    let request = Request::AttachmentLs { owner_prefix: Some(prefix.clone()) };
    let attachments = match call(meshd, conf, &request, Duration::ZERO)? {
        Reply::Attachments(list) => list,
        other => return Err(unexpected(&other)),
    };
    let mut failures = Vec::new();
    for attachment in attachments {
        let Some(owner) = attachment.owner else { continue };
        let Some((container_id, ifname)) = owner.strip_prefix(&prefix).and_then(|rest| rest.rsplit_once('/'))
        else {
            continue;
        };
        if valid.iter().any(|(c, i)| c == container_id && i == ifname) {
            continue;
        }
        if let Err(error) =
            call(meshd, conf, &Request::Release { owner: owner.clone(), grace_ms: 0 }, Duration::ZERO)
        {
            failures.push(format!("{owner}: {}", error.details));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(CniError::new(
            code::TRY_AGAIN_LATER,
            "some stale attachments were not released",
            failures.join("; "),
        ))
    }
}

/// The runtime's aliases that are names of the endpoint of their own: not the service it is a
/// task of (that name is the service's), not its task name, each valid as a DNS name (podman
/// also passes the container's short ID: it resolves as Docker's does), at most
/// `MAX_ALIASES`. An alias that is no valid name is left out rather than failing the container.
fn dns_aliases(conf: &NetConf, service: Option<&str>, task: &str) -> Vec<TaskName> {
    let mut aliases: Vec<TaskName> = Vec::new();
    for alias in &conf.aliases {
        let own = Some(alias.as_str()) != service && alias != task && !aliases.iter().any(|a| **a == **alias);
        if let Some(alias) = own.then(|| TaskName::try_from(alias.clone()).ok()).flatten() {
            aliases.push(alias);
        }
    }
    aliases.truncate(crate::state::validate::MAX_ALIASES);
    aliases
}

/// The service: CNI_ARGS, then the configuration, then an alias that names a service of the
/// network (`podman run --network-alias web` joins service web, as a Docker network alias shares
/// a name). Port mappings must be the service's published ports (meshd publishes per service,
/// on every node).
fn choose_service(meshd: &dyn Meshd, args: &CniArgs, conf: &NetConf) -> Result<Option<String>, CniError> {
    let explicit = args.service.clone().or_else(|| conf.service.clone());
    if explicit.is_some() && conf.port_mappings.is_empty() {
        return Ok(explicit);
    }
    if explicit.is_none() && conf.aliases.is_empty() && conf.port_mappings.is_empty() {
        return Ok(None);
    }
    let services: Vec<ServiceInfo> = match call(meshd, conf, &Request::ServiceLs {}, Duration::ZERO)? {
        Reply::Services(services) => services.into_iter().filter(|s| s.network == conf.network).collect(),
        other => return Err(unexpected(&other)),
    };
    let service = explicit
        .or_else(|| conf.aliases.iter().find(|alias| services.iter().any(|s| &s.name == *alias)).cloned());
    for mapping in &conf.port_mappings {
        let text = format!("{}:{}/{}", mapping.host_port, mapping.container_port, mapping.protocol);
        let published = service
            .as_ref()
            .and_then(|name| services.iter().find(|s| &s.name == name))
            .is_some_and(|s| s.ports.contains(&text));
        if !published {
            return Err(CniError::new(
                code::UNSUPPORTED_FIELD,
                "unsupported field",
                format!(
                    "runtimeConfig.portMappings {text}: meshd publishes ports per service, on every node \
                     (meshctl service create SVC --network {} --publish {}:{}/{}), and this container is {}",
                    conf.network,
                    mapping.host_port,
                    mapping.container_port,
                    mapping.protocol,
                    match &service {
                        Some(name) => format!("a task of {name}, which does not publish it"),
                        None => "no task of a service".to_string(),
                    }
                ),
            ));
        }
    }
    Ok(service)
}

/// MESHD_TASK, else K8S_POD_NAME (podman: the container's name) if it is a usable name, else
/// the container ID's first 12 characters (as Docker shortens IDs).
fn task_name(args: &CniArgs, container_id: &str) -> String {
    let usable = |name: &&String| {
        (1..=253).contains(&name.len())
            && name.as_bytes()[0].is_ascii_alphanumeric()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    args.task
        .as_ref()
        .or(args.pod_name.as_ref().filter(usable))
        .cloned()
        .unwrap_or_else(|| container_id.chars().take(12).collect())
}

fn ids(inv: &Invocation) -> (&str, &str, Option<String>) {
    // env::read guarantees both for ADD, CHECK and DEL.
    (
        inv.container_id.as_deref().unwrap_or_default(),
        inv.ifname.as_deref().unwrap_or_default(),
        inv.netns.clone(),
    )
}

fn call(meshd: &dyn Meshd, conf: &NetConf, request: &Request, wait: Duration) -> Result<Reply, CniError> {
    meshd.call(&conf.socket, request, wait).map_err(|error| client_error(conf, error))
}

fn client_error(conf: &NetConf, error: ClientError) -> CniError {
    match error {
        ClientError::Connect { .. } => CniError::new(
            code::TRY_AGAIN_LATER,
            "meshd is not reachable",
            format!("{error} (config key \"socket\": {})", conf.socket.display()),
        ),
        ClientError::Api(api) if api.kind == ErrorKind::Internal => {
            CniError::new(code::TRY_AGAIN_LATER, "meshd failed", api.message)
        }
        ClientError::Api(api) => CniError::new(code::MESHD_REFUSED, "meshd refused", api.message),
        other => CniError::new(code::TRY_AGAIN_LATER, "meshd failed", other.to_string()),
    }
}

fn unexpected(reply: &Reply) -> CniError {
    let shown: String = format!("{reply:?}").chars().take(120).collect();
    CniError::new(code::MESHD_REFUSED, "meshd answered something unexpected", shown)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::net::Ipv4Addr;

    use super::*;
    use crate::api::error::ApiError;
    use crate::cni::env::{Command, Invocation};
    use crate::cni::version::CniVersion;

    type Script = Box<dyn Fn(&Request) -> Result<Reply, ClientError>>;

    /// Answers from a script, remembering every request.
    struct Fake {
        answer: Script,
        seen: RefCell<Vec<Request>>,
    }

    impl Meshd for Fake {
        fn call(&self, _socket: &Path, request: &Request, _wait: Duration) -> Result<Reply, ClientError> {
            self.seen.borrow_mut().push(request.clone());
            (self.answer)(request)
        }
    }

    fn conf() -> NetConf {
        NetConf {
            version: CniVersion::V1_0_0,
            name: "front".into(),
            network: "front".into(),
            service: None,
            socket: "/run/meshd/meshd.sock".into(),
            aliases: Vec::new(),
            port_mappings: Vec::new(),
            prev_result: None,
            valid_attachments: Some(vec![("keep".into(), "eth0".into())]),
        }
    }

    fn del_of(container: &str) -> Invocation {
        Invocation {
            command: Command::Del,
            container_id: Some(container.into()),
            netns: None,
            ifname: Some("eth0".into()),
            args: String::new(),
        }
    }

    fn attachment(owner: &str) -> AttachmentInfo {
        AttachmentInfo {
            owner: Some(owner.into()),
            netns: "/run/netns/x".into(),
            network: "front".into(),
            address: Ipv4Addr::new(10, 1, 0, 2),
            prefix_len: 24,
            gateway: Ipv4Addr::new(10, 1, 0, 1),
            mtu: 1450,
            interface: "eth0".into(),
            mac: "02:00:00:00:00:02".into(),
            host_interface: "md00000000".into(),
            host_mac: "02:00:00:00:00:01".into(),
            default_route: true,
            service: None,
            task: None,
            terminating: false,
        }
    }

    #[test]
    fn del_succeeds_without_meshd_and_releases_by_owner() {
        let down = Fake {
            answer: Box::new(|_| {
                Err(ClientError::Connect { path: "/x".into(), source: std::io::ErrorKind::NotFound.into() })
            }),
            seen: RefCell::default(),
        };
        del(&down, &del_of("c1"), &CniArgs::default(), &conf()).unwrap();
        let up = Fake { answer: Box::new(|_| Ok(Reply::Detached { count: 0 })), seen: RefCell::default() };
        let args = CniArgs { grace: Some(Duration::from_secs(2)), ..CniArgs::default() };
        del(&up, &del_of("c1"), &args, &conf()).unwrap();
        assert_eq!(
            up.seen.borrow()[0],
            Request::Release { owner: "cni/front/c1/eth0".into(), grace_ms: 2000 }
        );
        // A refusal is an error (a runtime may retry); meshd failing inside, try again later.
        let failing = Fake {
            answer: Box::new(|_| Err(ClientError::Api(ApiError::new(ErrorKind::Internal, "kernel: busy")))),
            seen: RefCell::default(),
        };
        assert_eq!(
            del(&failing, &del_of("c1"), &CniArgs::default(), &conf()).unwrap_err().code,
            code::TRY_AGAIN_LATER
        );
    }

    #[test]
    fn gc_releases_only_this_configurations_stale_attachments() {
        let meshd = Fake {
            answer: Box::new(|request| match request {
                Request::AttachmentLs { .. } => Ok(Reply::Attachments(vec![
                    attachment("cni/front/keep/eth0"),
                    attachment("cni/front/stale/eth0"),
                    attachment("cni/front/keep/eth1"),
                ])),
                _ => Ok(Reply::Detached { count: 1 }),
            }),
            seen: RefCell::default(),
        };
        gc(&meshd, &conf()).unwrap();
        let seen = meshd.seen.borrow();
        assert_eq!(seen[0], Request::AttachmentLs { owner_prefix: Some("cni/front/".into()) });
        let released: Vec<&Request> = seen.iter().filter(|r| matches!(r, Request::Release { .. })).collect();
        assert_eq!(
            released,
            [
                &Request::Release { owner: "cni/front/stale/eth0".into(), grace_ms: 0 },
                &Request::Release { owner: "cni/front/keep/eth1".into(), grace_ms: 0 },
            ]
        );
    }

    #[test]
    fn task_names() {
        let long = "2ee2caada94bfb6dd0c0bc631e6d1afbbe258003b9537f7b859cfff74584b1f9";
        assert_eq!(task_name(&CniArgs::default(), long), "2ee2caada94b");
        let pod = CniArgs { pod_name: Some("web-7d4f".into()), ..CniArgs::default() };
        assert_eq!(task_name(&pod, long), "web-7d4f");
        let bad_pod = CniArgs { pod_name: Some("-x".into()), ..CniArgs::default() };
        assert_eq!(task_name(&bad_pod, "default-c1"), "default-c1");
        let explicit = CniArgs { task: Some("web.1".into()), ..pod };
        assert_eq!(task_name(&explicit, long), "web.1");
    }
}
