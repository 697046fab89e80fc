//! ADD results (spec section 5, "ADD Success"), in the version of the configuration: the node's
//! veth and the interface in the sandbox, the address with its prefix and gateway, the default
//! route when meshd added it, and `dns.nameservers = [127.0.0.11]` (meshd's DNS inside the
//! namespace). A result before ours (`prevResult`, when meshd-cni is not first in a chain) is
//! kept and ours appended to it. CHECK compares an attachment with such a result.

use serde_json::{json, Map, Value};

use super::error::{code, CniError};
use super::version::CniVersion;
use crate::api::reply::AttachmentInfo;

/// The address meshd's DNS answers on inside every attached namespace.
pub const NAMESERVER: &str = "127.0.0.11";

/// The result of an ADD that made `attachment` as `ifname` in `netns`.
pub fn add_result(
    version: CniVersion,
    attachment: &AttachmentInfo,
    ifname: &str,
    netns: &str,
    prev: Option<&Value>,
) -> Value {
    let mut result = match prev {
        Some(Value::Object(prev)) => prev.clone(),
        _ => Map::new(),
    };
    let mut interfaces = take_list(&mut result, "interfaces");
    let base = interfaces.len();
    interfaces.push(json!({ "name": attachment.host_interface, "mac": attachment.host_mac }));
    let mut inside = json!({ "name": ifname, "mac": attachment.mac, "sandbox": netns });
    if version >= CniVersion::V1_1_0 {
        inside["mtu"] = json!(attachment.mtu);
    }
    interfaces.push(inside);

    let mut ip = json!({
        "address": format!("{}/{}", attachment.address, attachment.prefix_len),
        "gateway": attachment.gateway.to_string(),
        "interface": base + 1,
    });
    if version == CniVersion::V0_4_0 {
        ip["version"] = json!("4");
    }
    let mut ips = take_list(&mut result, "ips");
    ips.push(ip);

    let mut routes = take_list(&mut result, "routes");
    if attachment.default_route {
        routes.push(json!({ "dst": "0.0.0.0/0", "gw": attachment.gateway.to_string() }));
    }

    let mut dns = match result.remove("dns") {
        Some(Value::Object(dns)) => dns,
        _ => Map::new(),
    };
    let mut nameservers = vec![json!(NAMESERVER)];
    if let Some(Value::Array(theirs)) = dns.remove("nameservers") {
        nameservers.extend(theirs.into_iter().filter(|n| n != NAMESERVER));
    }
    dns.insert("nameservers".into(), Value::Array(nameservers));

    result.insert("cniVersion".into(), json!(version.as_str()));
    result.insert("interfaces".into(), Value::Array(interfaces));
    result.insert("ips".into(), Value::Array(ips));
    result.insert("routes".into(), Value::Array(routes));
    result.insert("dns".into(), Value::Object(dns));
    Value::Object(result)
}

/// CHECK: the interface `ifname` in `prev` (the ADD's result) must be the attachment's, with
/// its address.
pub fn check_against(prev: &Value, attachment: &AttachmentInfo, ifname: &str) -> Result<(), CniError> {
    let failed = |details: String| {
        CniError::new(code::CHECK_FAILED, "the attachment differs from the ADD result", details)
    };
    let interfaces = prev.get("interfaces").and_then(Value::as_array).cloned().unwrap_or_default();
    let index = interfaces
        .iter()
        .position(|i| i.get("name").and_then(Value::as_str) == Some(ifname) && i.get("sandbox").is_some())
        .ok_or_else(|| failed(format!("prevResult has no interface {ifname} in a sandbox")))?;
    let mac = interfaces[index].get("mac").and_then(Value::as_str).unwrap_or_default();
    if !mac.is_empty() && !mac.eq_ignore_ascii_case(&attachment.mac) {
        return Err(failed(format!("{ifname} had MAC {mac}, meshd has {}", attachment.mac)));
    }
    let expected = format!("{}/{}", attachment.address, attachment.prefix_len);
    let listed = prev.get("ips").and_then(Value::as_array).is_some_and(|ips| {
        ips.iter().any(|ip| {
            ip.get("interface").and_then(Value::as_u64) == Some(index as u64)
                && ip.get("address").and_then(Value::as_str) == Some(expected.as_str())
        })
    });
    if !listed {
        return Err(failed(format!(
            "prevResult does not give {ifname} the address {expected} meshd holds for it"
        )));
    }
    Ok(())
}

fn take_list(map: &mut Map<String, Value>, key: &str) -> Vec<Value> {
    match map.remove(key) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn attachment() -> AttachmentInfo {
        AttachmentInfo {
            owner: Some("cni/front/c1/eth0".into()),
            netns: "/run/netns/x".into(),
            network: "front".into(),
            address: Ipv4Addr::new(10, 1, 0, 5),
            prefix_len: 24,
            gateway: Ipv4Addr::new(10, 1, 0, 1),
            mtu: 1450,
            interface: "eth0".into(),
            mac: "02:00:00:00:00:05".into(),
            host_interface: "md01020304".into(),
            host_mac: "02:00:00:00:00:99".into(),
            default_route: true,
            service: None,
            task: None,
            terminating: false,
        }
    }

    #[test]
    fn results_per_version() {
        let r = add_result(CniVersion::V1_0_0, &attachment(), "eth0", "/run/netns/x", None);
        assert_eq!(
            r,
            json!({
                "cniVersion": "1.0.0",
                "interfaces": [
                    {"name": "md01020304", "mac": "02:00:00:00:00:99"},
                    {"name": "eth0", "mac": "02:00:00:00:00:05", "sandbox": "/run/netns/x"}
                ],
                "ips": [{"address": "10.1.0.5/24", "gateway": "10.1.0.1", "interface": 1}],
                "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}],
                "dns": {"nameservers": ["127.0.0.11"]}
            })
        );
        let r = add_result(CniVersion::V0_4_0, &attachment(), "eth0", "/run/netns/x", None);
        assert_eq!(r["ips"][0]["version"], "4");
        assert!(r["interfaces"][1].get("mtu").is_none());
        let r = add_result(CniVersion::V1_1_0, &attachment(), "eth0", "/run/netns/x", None);
        assert_eq!(r["interfaces"][1]["mtu"], 1450);
        assert!(r["ips"][0].get("version").is_none());
        check_against(&r, &attachment(), "eth0").unwrap();
    }

    #[test]
    fn a_previous_result_is_kept() {
        let prev = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "lo", "sandbox": "/run/netns/x"}],
            "ips": [{"address": "127.0.0.1/8", "interface": 0}],
            "dns": {"nameservers": ["10.0.0.53"]},
            "custom": true
        });
        let r = add_result(CniVersion::V1_0_0, &attachment(), "eth0", "/run/netns/x", Some(&prev));
        assert_eq!(r["interfaces"].as_array().unwrap().len(), 3);
        assert_eq!(r["ips"][1]["interface"], 2);
        assert_eq!(r["dns"]["nameservers"], json!(["127.0.0.11", "10.0.0.53"]));
        assert_eq!(r["custom"], true);
        check_against(&r, &attachment(), "eth0").unwrap();
    }

    #[test]
    fn check_finds_differences() {
        let r = add_result(CniVersion::V1_0_0, &attachment(), "eth0", "/run/netns/x", None);
        let mut moved = attachment();
        moved.address = Ipv4Addr::new(10, 1, 0, 6);
        let err = check_against(&r, &moved, "eth0").unwrap_err();
        assert!(err.details.contains("10.1.0.6/24"), "{err}");
        let err = check_against(&r, &attachment(), "eth1").unwrap_err();
        assert_eq!(err.code, code::CHECK_FAILED);
    }
}
