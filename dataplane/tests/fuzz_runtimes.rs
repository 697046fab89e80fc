//! Property tests over what container runtimes hand meshd: meshd-cni's environment, `CNI_ARGS`
//! and stdin, and the bodies of Docker's driver calls. Any input gets a decision (a value or an
//! error of the documented kind), never a panic; inputs shaped like the real ones, with every
//! field mutated, too.

use std::collections::HashMap;

use meshd::cni::error::code;
use meshd::cni::{args, config, env};
use meshd::docker::protocol;
use proptest::prelude::*;
use serde_json::{json, Value};

#[path = "../../tests/src/depth.rs"]
mod depth;

/// Every call path of the driver protocol.
const PATHS: [&str; 17] = [
    "/Plugin.Activate",
    "/NetworkDriver.GetCapabilities",
    "/NetworkDriver.CreateNetwork",
    "/NetworkDriver.DeleteNetwork",
    "/NetworkDriver.CreateEndpoint",
    "/NetworkDriver.DeleteEndpoint",
    "/NetworkDriver.EndpointOperInfo",
    "/NetworkDriver.Join",
    "/NetworkDriver.Leave",
    "/NetworkDriver.ProgramExternalConnectivity",
    "/IpamDriver.GetCapabilities",
    "/IpamDriver.GetDefaultAddressSpaces",
    "/IpamDriver.RequestPool",
    "/IpamDriver.ReleasePool",
    "/IpamDriver.RequestAddress",
    "/IpamDriver.ReleaseAddress",
    "/NetworkDriver.FreeNetwork",
];

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        Just(json!("10.1.0.0/24")),
        Just(json!("10.1.0.2/24")),
        Just(json!("1.0.0")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(".{0,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A real-shaped input with one field replaced by anything.
fn mutated(base: Value, keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    (0..keys.len(), any_json()).prop_map(move |(i, value)| {
        let mut v = base.clone();
        v[keys[i]] = value;
        v
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(depth::cases(2000)))]

    #[test]
    fn cni_stdin_gets_a_decision(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        if let Err(e) = config::parse(&bytes) {
            prop_assert!([code::INCOMPATIBLE_VERSION, code::UNSUPPORTED_FIELD, code::DECODE_FAILURE, code::INVALID_CONFIG].contains(&e.code));
        }
        let _ = config::asked_version(&bytes);
    }

    #[test]
    fn cni_configs_with_any_field_get_a_decision(conf in mutated(
        json!({"cniVersion": "1.0.0", "name": "front", "type": "meshd-cni", "network": "front",
               "socket": "/run/meshd/meshd.sock", "service": "web",
               "runtimeConfig": {"aliases": {"front": ["web"]}, "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]},
               "prevResult": {"interfaces": []}, "cni.dev/valid-attachments": [{"containerID": "c", "ifname": "eth0"}]}),
        &["cniVersion", "name", "network", "socket", "service", "runtimeConfig", "prevResult", "cni.dev/valid-attachments"],
    )) {
        if let Err(e) = config::parse(conf.to_string().as_bytes()) {
            prop_assert!([code::INCOMPATIBLE_VERSION, code::UNSUPPORTED_FIELD, code::INVALID_CONFIG].contains(&e.code), "{conf}: {e}");
        }
    }

    #[test]
    fn cni_args_get_a_decision(text in ".{0,200}") {
        if let Err(e) = args::parse(&text) {
            prop_assert_eq!(e.code, code::UNSUPPORTED_FIELD);
        }
    }

    #[test]
    fn cni_environments_get_a_decision(
        command in prop_oneof![Just("ADD".to_string()), Just("DEL".to_string()), Just("CHECK".to_string()), Just("GC".to_string()), Just("STATUS".to_string()), Just("VERSION".to_string()), ".{0,8}"],
        container in ".{0,80}", netns in ".{0,80}", ifname in ".{0,20}", cni_args in ".{0,80}",
    ) {
        let vars: HashMap<&str, String> = [
            ("CNI_COMMAND", command), ("CNI_CONTAINERID", container), ("CNI_NETNS", netns),
            ("CNI_IFNAME", ifname), ("CNI_ARGS", cni_args),
        ].into_iter().collect();
        if let Err(e) = env::read(&|name| vars.get(name).cloned()) {
            prop_assert_eq!(e.code, code::INVALID_ENV);
        }
    }

    #[test]
    fn docker_calls_get_a_decision(path in 0..PATHS.len(), bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        prop_assert!(protocol::parse(PATHS[path], &bytes).is_some());
    }

    #[test]
    fn docker_bodies_with_any_field_get_a_decision(body in mutated(
        json!({"NetworkID": "n1", "EndpointID": "e1", "PoolID": "meshd:10.1.0.0/24", "Pool": "10.1.0.0/24",
               "Address": "10.1.0.2", "SandboxKey": "/var/run/docker/netns/abc", "V6": false, "SubPool": "",
               "Interface": {"Address": "10.1.0.2/24", "MacAddress": ""},
               "Options": {"com.docker.network.portmap": [{"Proto": 6, "Port": 80, "HostPort": 8080}], "meshd.service": "web",
                           "com.docker.network.generic": {"meshd.network": "front"}},
               "IPv4Data": [{"AddressSpace": "meshd", "Pool": "10.1.0.0/24"}], "IPv6Data": []}),
        &["NetworkID", "EndpointID", "PoolID", "Pool", "Address", "SandboxKey", "V6", "SubPool", "Interface", "Options", "IPv4Data", "IPv6Data"],
    )) {
        for path in PATHS {
            prop_assert!(protocol::parse(path, body.to_string().as_bytes()).is_some());
        }
    }
}
