//! Docker's remote network and IPAM driver protocol (libnetwork's `remote` and `ipams/remote`
//! drivers, plugin API v1.2): one POST per call, JSON in, JSON out, as Docker 20.10 sends and
//! expects them (docs/runtimes.md lists the calls a `docker network create` and a `docker run`
//! make). Everything Docker sends is parsed here into a [`Call`], with IDs, paths, addresses
//! and options validated before the driver sees them; a call that does not parse is refused
//! with a message naming the field.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::Serialize;
use serde_json::Value;

use super::error::DriverError;

/// The address space the IPAM driver names (Docker passes it back in CreateNetwork: a network
/// whose addresses did not come from meshd's IPAM has another one).
pub const ADDRESS_SPACE: &str = "meshd";

/// Longest ID (Docker's are 64 hex digits) and option value accepted.
const MAX_ID_LEN: usize = 128;
const MAX_PATH_LEN: usize = 4096;

/// One call of Docker's, parsed and validated.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Activate,
    NetworkCapabilities,
    IpamCapabilities,
    AddressSpaces,
    RequestPool(PoolRequest),
    ReleasePool {
        pool_id: String,
    },
    RequestAddress(AddressRequest),
    ReleaseAddress {
        pool_id: String,
        address: Ipv4Addr,
    },
    CreateNetwork(NetworkRequest),
    DeleteNetwork {
        network_id: String,
    },
    CreateEndpoint(EndpointRequest),
    DeleteEndpoint(EndpointRef),
    Join(JoinRequest),
    Leave(EndpointRef),
    EndpointInfo(EndpointRef),
    /// Calls with nothing for meshd to do (external connectivity, discovery, swarm-scope
    /// allocation): answered `{}`.
    Nothing,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRequest {
    /// `--subnet`, if given.
    pub pool: Option<Ipv4Net>,
    /// `--ip-range`, if given (checked against the subnet when the network is created).
    pub sub_pool: Option<Ipv4Net>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressRequest {
    pub pool_id: String,
    /// A specific address (`--ip`, `--gateway`), if asked for.
    pub address: Option<Ipv4Addr>,
    /// The network's gateway (asked for once, when the network is created).
    pub gateway: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRequest {
    pub network_id: String,
    pub subnet: Ipv4Net,
    /// `-o KEY=VALUE` of `docker network create`.
    pub options: BTreeMap<String, String>,
    /// `--gateway` (Docker sends the gateway the IPAM driver answered).
    pub gateway: Option<Ipv4Addr>,
    /// `--aux-address NAME=IP`.
    pub aux_addresses: BTreeMap<String, Ipv4Addr>,
    /// `--internal`.
    pub internal: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRef {
    pub network_id: String,
    pub endpoint_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRequest {
    pub endpoint: EndpointRef,
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub mac: Option<[u8; 6]>,
    /// `--driver-opt KEY=VALUE` of `docker network connect` / `docker run --network
    /// name=NET,driver-opt=...`.
    pub options: BTreeMap<String, String>,
    /// `-p HOST:CONTAINER[/PROTO]` of the container.
    pub port_maps: Vec<PortMap>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMap {
    pub host_port: u16,
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    pub endpoint: EndpointRef,
    /// The container's network namespace (a file under Docker's exec root).
    pub sandbox_key: String,
}

/// Join's answer: the peer Docker moves into the container, its gateway and routes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct JoinReply {
    pub interface_name: InterfaceName,
    pub gateway: String,
    pub static_routes: Vec<StaticRoute>,
    pub disable_gateway_service: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InterfaceName {
    pub src_name: String,
    pub dst_prefix: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StaticRoute {
    pub destination: String,
    /// 0: through `next_hop`.
    pub route_type: u8,
    pub next_hop: String,
}

/// Parses the body of a call to `path`; unknown paths are None (answered 404).
pub fn parse(path: &str, body: &[u8]) -> Option<Result<Call, DriverError>> {
    let call = match path {
        "/Plugin.Activate" => Ok(Call::Activate),
        "/NetworkDriver.GetCapabilities" => Ok(Call::NetworkCapabilities),
        "/IpamDriver.GetCapabilities" => Ok(Call::IpamCapabilities),
        "/IpamDriver.GetDefaultAddressSpaces" => Ok(Call::AddressSpaces),
        "/IpamDriver.RequestPool" => json(body).and_then(|v| pool_request(&v)),
        "/IpamDriver.ReleasePool" => {
            json(body).and_then(|v| Ok(Call::ReleasePool { pool_id: id(&v, "PoolID")? }))
        }
        "/IpamDriver.RequestAddress" => json(body).and_then(|v| address_request(&v)),
        "/IpamDriver.ReleaseAddress" => json(body).and_then(|v| {
            let address = text(&v, "Address")?;
            let address = address.parse().map_err(|_| {
                DriverError::bad(format!("Address {:?} is not an IPv4 address", shown(&address)))
            })?;
            Ok(Call::ReleaseAddress { pool_id: id(&v, "PoolID")?, address })
        }),
        "/NetworkDriver.CreateNetwork" => json(body).and_then(|v| network_request(&v)),
        "/NetworkDriver.DeleteNetwork" => {
            json(body).and_then(|v| Ok(Call::DeleteNetwork { network_id: id(&v, "NetworkID")? }))
        }
        "/NetworkDriver.CreateEndpoint" => json(body).and_then(|v| endpoint_request(&v)),
        "/NetworkDriver.DeleteEndpoint" => {
            json(body).and_then(|v| endpoint_ref(&v).map(Call::DeleteEndpoint))
        }
        "/NetworkDriver.Join" => json(body).and_then(|v| {
            let endpoint = endpoint_ref(&v)?;
            let sandbox_key = text(&v, "SandboxKey")?;
            if !sandbox_key.starts_with('/') || sandbox_key.len() > MAX_PATH_LEN {
                return Err(DriverError::bad(format!(
                    "SandboxKey {:?} is not an absolute path",
                    shown(&sandbox_key)
                )));
            }
            Ok(Call::Join(JoinRequest { endpoint, sandbox_key }))
        }),
        "/NetworkDriver.Leave" => json(body).and_then(|v| endpoint_ref(&v).map(Call::Leave)),
        "/NetworkDriver.EndpointOperInfo" => {
            json(body).and_then(|v| endpoint_ref(&v).map(Call::EndpointInfo))
        }
        "/NetworkDriver.ProgramExternalConnectivity"
        | "/NetworkDriver.RevokeExternalConnectivity"
        | "/NetworkDriver.DiscoverNew"
        | "/NetworkDriver.DiscoverDelete"
        | "/NetworkDriver.AllocateNetwork"
        | "/NetworkDriver.FreeNetwork" => Ok(Call::Nothing),
        _ => return None,
    };
    Some(call)
}

fn json(body: &[u8]) -> Result<Value, DriverError> {
    serde_json::from_slice(body).map_err(|e| DriverError::bad(format!("the request is not JSON: {e}")))
}

fn pool_request(v: &Value) -> Result<Call, DriverError> {
    if v.get("V6").and_then(Value::as_bool).unwrap_or(false) {
        return Err(DriverError::bad("meshd networks are IPv4 only (leave out --ipv6)"));
    }
    let sub_pool =
        match optional_text(v, "SubPool")?.as_str() {
            "" => None,
            text => Some(text.parse::<Ipv4Net>().map_err(|_| {
                DriverError::bad(format!("--ip-range {:?} is not an IPv4 subnet", shown(text)))
            })?),
        };
    let pool = optional_text(v, "Pool")?;
    let pool = if pool.is_empty() {
        None
    } else {
        let net: Ipv4Net = pool
            .parse()
            .map_err(|_| DriverError::bad(format!("--subnet {:?} is not an IPv4 subnet", shown(&pool))))?;
        if net != net.trunc() {
            return Err(DriverError::bad(format!(
                "--subnet {net} has host bits set (did you mean {}?)",
                net.trunc()
            )));
        }
        Some(net)
    };
    Ok(Call::RequestPool(PoolRequest { pool, sub_pool }))
}

fn address_request(v: &Value) -> Result<Call, DriverError> {
    let address = optional_text(v, "Address")?;
    let address =
        if address.is_empty() {
            None
        } else {
            Some(address.parse().map_err(|_| {
                DriverError::bad(format!("Address {:?} is not an IPv4 address", shown(&address)))
            })?)
        };
    let gateway = v
        .get("Options")
        .and_then(|o| o.get("RequestAddressType"))
        .and_then(Value::as_str)
        .is_some_and(|t| t == "com.docker.network.gateway");
    Ok(Call::RequestAddress(AddressRequest { pool_id: id(v, "PoolID")?, address, gateway }))
}

fn network_request(v: &Value) -> Result<Call, DriverError> {
    let network_id = id(v, "NetworkID")?;
    let options = v.get("Options");
    if options.and_then(|o| o.get("com.docker.network.enable_ipv6")).and_then(Value::as_bool).unwrap_or(false)
    {
        return Err(DriverError::bad("meshd networks are IPv4 only (leave out --ipv6)"));
    }
    let internal =
        options.and_then(|o| o.get("com.docker.network.internal")).and_then(Value::as_bool).unwrap_or(false);
    if v.get("IPv6Data").and_then(Value::as_array).is_some_and(|a| !a.is_empty()) {
        return Err(DriverError::bad("meshd networks are IPv4 only"));
    }
    let data = v.get("IPv4Data").and_then(Value::as_array).cloned().unwrap_or_default();
    let [data] = data.as_slice() else {
        return Err(DriverError::bad("a meshd network has exactly one IPv4 subnet"));
    };
    if data.get("AddressSpace").and_then(Value::as_str) != Some(ADDRESS_SPACE) {
        return Err(DriverError::bad(
            "the addresses must come from meshd's IPAM: docker network create -d meshd --ipam-driver meshd ...",
        ));
    }
    let pool = text(data, "Pool")?;
    let subnet = pool
        .parse()
        .map_err(|_| DriverError::bad(format!("IPv4Data Pool {:?} is not a subnet", shown(&pool))))?;
    // Docker sends the gateway and aux addresses as ADDRESS/PREFIX.
    let host = |what: &str, text: &str| -> Result<Ipv4Addr, DriverError> {
        text.parse::<Ipv4Net>()
            .map(|n| n.addr())
            .or_else(|_| text.parse::<Ipv4Addr>())
            .map_err(|_| DriverError::bad(format!("{what} {:?} is not an IPv4 address", shown(text))))
    };
    let gateway = match optional_text(data, "Gateway")?.as_str() {
        "" => None,
        text => Some(host("IPv4Data Gateway", text)?),
    };
    let mut aux_addresses = BTreeMap::new();
    for (name, text) in string_map(data.get("AuxAddresses"), "--aux-address")? {
        let address = host(&format!("--aux-address {name}"), &text)?;
        aux_addresses.insert(name, address);
    }
    Ok(Call::CreateNetwork(NetworkRequest {
        network_id,
        subnet,
        options: string_map(options.and_then(|o| o.get("com.docker.network.generic")), "-o")?,
        gateway,
        aux_addresses,
        internal,
    }))
}

fn endpoint_request(v: &Value) -> Result<Call, DriverError> {
    let endpoint = endpoint_ref(v)?;
    let interface = v.get("Interface").cloned().unwrap_or(Value::Null);
    if interface.get("AddressIPv6").and_then(Value::as_str).is_some_and(|a| !a.is_empty()) {
        return Err(DriverError::bad("meshd networks are IPv4 only"));
    }
    let address = interface.get("Address").and_then(Value::as_str).unwrap_or_default();
    let cidr: Ipv4Net = address.parse().map_err(|_| {
        DriverError::bad(format!(
            "Interface.Address {:?} is not an IPv4 address with a prefix",
            shown(address)
        ))
    })?;
    let mac =
        match interface.get("MacAddress").and_then(Value::as_str).unwrap_or_default() {
            "" => None,
            text => Some(parse_mac(text).ok_or_else(|| {
                DriverError::bad(format!("MacAddress {:?} is not a MAC address", shown(text)))
            })?),
        };
    let options = v.get("Options");
    let mut driver_opts = BTreeMap::new();
    if let Some(Value::Object(map)) = options {
        for (key, value) in map {
            // Docker's own keys hold lists and objects; driver options are strings.
            if let (false, Value::String(value)) = (key.starts_with("com.docker."), value) {
                driver_opts.insert(bounded(key)?, bounded(value)?);
            }
        }
    }
    let port_maps = match options.and_then(|o| o.get("com.docker.network.portmap")) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().map(port_map).collect::<Result<_, _>>()?,
        Some(_) => return Err(DriverError::bad("com.docker.network.portmap must be a list")),
    };
    Ok(Call::CreateEndpoint(EndpointRequest {
        endpoint,
        address: cidr.addr(),
        prefix_len: cidr.prefix_len(),
        mac,
        options: driver_opts,
        port_maps,
    }))
}

fn port_map(v: &Value) -> Result<PortMap, DriverError> {
    let port = |key: &str| {
        v.get(key)
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| DriverError::bad(format!("portmap {key} is not a port: {v}")))
    };
    let protocol = match v.get("Proto").and_then(Value::as_u64) {
        Some(6) => "tcp",
        Some(17) => "udp",
        other => {
            return Err(DriverError::bad(format!("-p with protocol {other:?}: meshd publishes tcp and udp")))
        }
    };
    Ok(PortMap { host_port: port("HostPort")?, container_port: port("Port")?, protocol })
}

fn endpoint_ref(v: &Value) -> Result<EndpointRef, DriverError> {
    Ok(EndpointRef { network_id: id(v, "NetworkID")?, endpoint_id: id(v, "EndpointID")? })
}

/// A Docker ID (network, endpoint) or meshd's pool ID: printable, no spaces, bounded.
fn id(v: &Value, key: &str) -> Result<String, DriverError> {
    let value = text(v, key)?;
    let ok = (1..=MAX_ID_LEN).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(value)
    } else {
        Err(DriverError::bad(format!("{key} {:?} is not an ID", shown(&value))))
    }
}

fn text(v: &Value, key: &str) -> Result<String, DriverError> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| DriverError::bad(format!("{key} is missing")))
}

fn optional_text(v: &Value, key: &str) -> Result<String, DriverError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(DriverError::bad(format!("{key} must be a string"))),
    }
}

fn string_map(value: Option<&Value>, what: &str) -> Result<BTreeMap<String, String>, DriverError> {
    let mut out = BTreeMap::new();
    if let Some(Value::Object(map)) = value {
        for (key, value) in map {
            let value = value
                .as_str()
                .ok_or_else(|| DriverError::bad(format!("{what} {key}: the value must be a string")))?;
            out.insert(bounded(key)?, bounded(value)?);
        }
    }
    Ok(out)
}

fn bounded(text: &str) -> Result<String, DriverError> {
    if text.len() > MAX_PATH_LEN {
        return Err(DriverError::bad(format!("an option is longer than {MAX_PATH_LEN} bytes")));
    }
    Ok(text.to_string())
}

/// `aa:bb:cc:dd:ee:ff`
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let parts: Vec<u8> = text
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).ok().filter(|_| p.len() == 2))
        .collect::<Option<_>>()?;
    parts.try_into().ok()
}

fn shown(text: &str) -> String {
    text.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(path: &str, body: &str) -> Result<Call, DriverError> {
        parse(path, body.as_bytes()).expect("a known path")
    }

    /// The bodies Docker 20.10 sent in the runtime research (docs/runtimes.md).
    #[test]
    fn docker_calls_parse() {
        assert_eq!(call("/Plugin.Activate", ""), Ok(Call::Activate));
        let pool = call(
            "/IpamDriver.RequestPool",
            r#"{"AddressSpace":"meshd","Pool":"10.97.0.0/24","SubPool":"","Options":{"x":"y"},"V6":false}"#,
        );
        assert_eq!(
            pool,
            Ok(Call::RequestPool(PoolRequest {
                pool: Some("10.97.0.0/24".parse().unwrap()),
                sub_pool: None
            }))
        );
        let ranged = call("/IpamDriver.RequestPool", r#"{"Pool":"10.97.0.0/24","SubPool":"10.97.0.128/25"}"#);
        assert!(matches!(ranged, Ok(Call::RequestPool(PoolRequest { sub_pool: Some(_), .. }))));
        let gateway = call(
            "/IpamDriver.RequestAddress",
            r#"{"PoolID":"meshd:10.97.0.0/24","Address":"","Options":{"RequestAddressType":"com.docker.network.gateway"}}"#,
        );
        assert!(matches!(
            gateway,
            Ok(Call::RequestAddress(AddressRequest { gateway: true, address: None, .. }))
        ));
        let network = call(
            "/NetworkDriver.CreateNetwork",
            r#"{"NetworkID":"adfb49","Options":{"com.docker.network.enable_ipv6":false,
                "com.docker.network.generic":{"meshd.network":"front"}},
                "IPv4Data":[{"AddressSpace":"meshd","Gateway":"10.97.0.1/24","Pool":"10.97.0.0/24"}],"IPv6Data":[]}"#,
        )
        .unwrap();
        let Call::CreateNetwork(network) = network else { panic!() };
        assert_eq!(network.options.get("meshd.network").map(String::as_str), Some("front"));
        assert_eq!(network.gateway, Some(Ipv4Addr::new(10, 97, 0, 1)));
        let optioned = call(
            "/NetworkDriver.CreateNetwork",
            r#"{"NetworkID":"adfb49","Options":{"com.docker.network.internal":true,
                "com.docker.network.generic":{"com.docker.network.driver.mtu":"1400"}},
                "IPv4Data":[{"AddressSpace":"meshd","Gateway":"10.97.0.254/24","Pool":"10.97.0.0/24",
                  "AuxAddresses":{"printer":"10.97.0.9/24"}}],"IPv6Data":[]}"#,
        )
        .unwrap();
        let Call::CreateNetwork(optioned) = optioned else { panic!() };
        assert!(optioned.internal);
        assert_eq!(optioned.gateway, Some(Ipv4Addr::new(10, 97, 0, 254)));
        assert_eq!(optioned.aux_addresses.get("printer"), Some(&Ipv4Addr::new(10, 97, 0, 9)));
        let endpoint = call(
            "/NetworkDriver.CreateEndpoint",
            r#"{"NetworkID":"adfb","EndpointID":"f8b4d2",
                "Interface":{"Address":"10.97.0.2/24","AddressIPv6":"","MacAddress":"02:42:0a:61:00:3c"},
                "Options":{"com.docker.network.endpoint.exposedports":[{"Proto":6,"Port":80}],
                  "com.docker.network.portmap":[{"Proto":6,"IP":"","Port":80,"HostIP":"","HostPort":8080,"HostPortEnd":8080}],
                  "meshd.service":"web"}}"#,
        )
        .unwrap();
        let Call::CreateEndpoint(endpoint) = endpoint else { panic!() };
        assert_eq!((endpoint.address, endpoint.prefix_len), (Ipv4Addr::new(10, 97, 0, 2), 24));
        assert_eq!(endpoint.mac, Some([2, 0x42, 10, 0x61, 0, 0x3c]));
        assert_eq!(endpoint.options.get("meshd.service").map(String::as_str), Some("web"));
        assert_eq!(endpoint.port_maps, [PortMap { host_port: 8080, container_port: 80, protocol: "tcp" }]);
        let join = call(
            "/NetworkDriver.Join",
            r#"{"NetworkID":"adfb","EndpointID":"f8b4","SandboxKey":"/var/run/docker/netns/8ec4404e506d","Options":{}}"#,
        );
        assert!(matches!(join, Ok(Call::Join(_))));
        assert_eq!(call("/NetworkDriver.ProgramExternalConnectivity", "{}"), Ok(Call::Nothing));
        assert!(parse("/NetworkDriver.Bogus", b"{}").is_none());
    }

    #[test]
    fn bad_calls_say_what() {
        let cases = [
            ("/IpamDriver.RequestPool", r#"{"Pool":"10.0.0.1/24"}"#, "host bits"),
            ("/IpamDriver.RequestPool", r#"{"Pool":"nope"}"#, "not an IPv4 subnet"),
            ("/IpamDriver.RequestPool", r#"{"V6":true}"#, "IPv4 only"),
            ("/IpamDriver.RequestPool", r#"{"SubPool":"nope"}"#, "--ip-range"),
            ("/IpamDriver.RequestAddress", r#"{"PoolID":"p","Address":"x"}"#, "not an IPv4 address"),
            (
                "/NetworkDriver.CreateNetwork",
                r#"{"NetworkID":"n","IPv4Data":[{"AddressSpace":"LocalDefault","Pool":"10.0.0.0/24"}]}"#,
                "--ipam-driver meshd",
            ),
            (
                "/NetworkDriver.CreateNetwork",
                r#"{"NetworkID":"n","IPv4Data":[{"AddressSpace":"meshd","Pool":"10.0.0.0/24","Gateway":"x"}]}"#,
                "Gateway",
            ),
            (
                "/NetworkDriver.CreateEndpoint",
                r#"{"NetworkID":"n","EndpointID":"e","Interface":{"Address":"10.0.0.2"}}"#,
                "prefix",
            ),
            ("/NetworkDriver.Join", r#"{"NetworkID":"n","EndpointID":"e","SandboxKey":"rel"}"#, "absolute"),
            ("/NetworkDriver.Leave", r#"{"NetworkID":"has space","EndpointID":"e"}"#, "NetworkID"),
            ("/NetworkDriver.Leave", "not json", "not JSON"),
        ];
        for (path, body, needle) in cases {
            let err = call(path, body).unwrap_err();
            assert!(err.to_string().contains(needle), "{path} {body}: {err}");
        }
        assert_eq!(parse_mac("02:42:0a:61:00:3c"), Some([2, 0x42, 10, 0x61, 0, 0x3c]));
        assert_eq!(parse_mac("2:42:0a:61:00:3c"), None);
    }
}
