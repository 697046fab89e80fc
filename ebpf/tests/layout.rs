//! Keeps the Rust mirrors in step with the C headers they mirror.
//!
//! Compiles a small C program against `include/abi/*.h` with the host compiler; it prints the size
//! of every struct, the offset of every field and the value of every enumerator, and each is
//! compared with what Rust says. A field added on one side only fails here, not in the kernel.

use std::collections::HashMap;
use std::mem::{offset_of, size_of};
use std::path::PathBuf;
use std::process::Command;

use meshd_ebpf::endpoint::{Endpoint, Iface, ENDPOINTS_MAX, FLAG_LOCAL, IFACES_MAX, IFACE_INTERNAL};
use meshd_ebpf::events::{
    Event, EventBucket, EventConfig, BUCKETS_MAX, CONFIG_MAX as EVENT_CONFIG_MAX, DIR_UNKNOWN, FLOW_PACKET,
    FLOW_SOCKET, RING_BYTES, TYPE_DROP, TYPE_FLOW,
};
use meshd_ebpf::lb::{
    CtKey, CtVal, Flow, FlowKey, RnatKey, Service, CT_FIN, CT_MAX, FLOWS_PER_ENDPOINT, FLOW_REPLY,
    FLOW_TABLES_MAX, FLOW_TO_SERVICE, MAGLEV_FINGERPRINT, MAGLEV_MAX, MAGLEV_SIZE, MAGLEV_SLOTS,
    MAGLEV_TEMPLATE_MAX, SERVICES_MAX,
};
use meshd_ebpf::mesh::{
    Frontend, FrontendKey, MeshNat, MeshReturn, SockKey, SockNat, FRONTENDS_MAX, FRONTEND_LOCAL,
    MESH_RETURN_MAX, MESH_RNAT_MAX, SOCK_LAST, SOCK_RNAT_PER_NETNS, SOCK_TABLES_MAX, SOCK_TRANSLATION,
};
use meshd_ebpf::node::{Node, NodeConfig, NodeHop, CONFIG_MAX, NODES_MAX, NODE_HOPS_MAX, NODE_MEMBER};
use meshd_ebpf::overlay::{OverlayConfig, OverlayHop, CONFIG_MAX as OVERLAY_MAX, FAST_PATH, HOPS_MAX};
use meshd_ebpf::sock_lb::{SockClient, SockNet, SOCK_CLIENTS_MAX, SOCK_CLIENT_NETS};
use meshd_ebpf::verdict::{Direction, Reason, VerdictCounter, VerdictKey, VERDICT_MAX};

/// Runs the C probe and returns its `name value` lines as a map.
fn c_facts(probe_body: &str) -> HashMap<String, u64> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("meshd-layout-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("probe.c");
    let exe = dir.join("probe");
    let program = format!(
        "#include <stdio.h>\n#include <stddef.h>\n#include \"abi/verdict.h\"\n#include \"abi/endpoint.h\"\n#include \"abi/node.h\"\n#include \"abi/lb.h\"\n#include \"abi/mesh.h\"\n#include \"abi/events.h\"\n#include \"abi/overlay.h\"\n#include \"abi/sock.h\"\n#include \"abi/encrypt.h\"\n\
         #define SIZE(t) printf(\"sizeof %s %zu\\n\", #t, sizeof(struct t))\n\
         #define OFF(t, f) printf(\"offsetof %s.%s %zu\\n\", #t, #f, offsetof(struct t, f))\n\
         #define ENUM(e) printf(\"enum %s %d\\n\", #e, (int)(e))\n\
         int main(void) {{\n{probe_body}\nreturn 0;\n}}\n"
    );
    std::fs::write(&src, program).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .arg("-I")
        .arg(manifest.join("include"))
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .status()
        .unwrap_or_else(|e| panic!("cannot run the host C compiler `{cc}`: {e}"));
    assert!(status.success(), "the C layout probe did not compile");
    let output = Command::new(&exe).output().unwrap();
    std::fs::remove_dir_all(&dir).ok();
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (name, value) = line.rsplit_once(' ').unwrap();
            (name.to_string(), value.parse().unwrap())
        })
        .collect()
}

#[test]
fn verdict_types_match_the_header() {
    let facts = c_facts(&format!(
        "SIZE(md_verdict_key); OFF(md_verdict_key, ifindex); OFF(md_verdict_key, reason);\n\
         OFF(md_verdict_key, dir); OFF(md_verdict_key, pad);\n\
         SIZE(md_verdict_val); OFF(md_verdict_val, packets); OFF(md_verdict_val, bytes);\n{}",
        header_enumerators("abi/verdict.h").iter().map(|name| format!("ENUM({name});")).collect::<String>()
    ));
    let rust: HashMap<&str, usize> = HashMap::from([
        ("sizeof md_verdict_key", size_of::<VerdictKey>()),
        ("offsetof md_verdict_key.ifindex", offset_of!(VerdictKey, ifindex)),
        ("offsetof md_verdict_key.reason", offset_of!(VerdictKey, reason)),
        ("offsetof md_verdict_key.dir", offset_of!(VerdictKey, dir)),
        ("offsetof md_verdict_key.pad", offset_of!(VerdictKey, pad)),
        ("sizeof md_verdict_val", size_of::<VerdictCounter>()),
        ("offsetof md_verdict_val.packets", offset_of!(VerdictCounter, packets)),
        ("offsetof md_verdict_val.bytes", offset_of!(VerdictCounter, bytes)),
        ("enum MD_VERDICT_MAX", VERDICT_MAX as usize),
    ]);
    for (name, rust_value) in &rust {
        assert_eq!(facts.get(*name).copied(), Some(*rust_value as u64), "{name}");
    }

    for reason in Reason::KNOWN {
        let name = format!("enum {}", reason.c_name().unwrap());
        assert_eq!(facts.get(&name).copied(), Some(u64::from(reason.code())), "{name}");
    }
    for dir in Direction::KNOWN {
        let name = format!("enum {}", dir.c_name().unwrap());
        assert_eq!(facts.get(&name).copied(), Some(u64::from(dir.code())), "{name}");
    }
    // Every enumerator of the header is known to Rust: nothing added on the C side only.
    let known: Vec<&str> = Reason::KNOWN
        .iter()
        .filter_map(|r| r.c_name())
        .chain(Direction::KNOWN.iter().filter_map(|d| d.c_name()))
        .chain(["MD_VERDICT_MAX"])
        .collect();
    for name in header_enumerators("abi/verdict.h") {
        assert!(known.contains(&name.as_str()), "{name} has no Rust mirror");
    }
}

/// The enumerators (`MD_X = N,` lines) declared in a header under `include/`.
fn header_enumerators(header: &str) -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("include").join(header);
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let (name, _) = line.trim().split_once(" = ")?;
            name.starts_with("MD_").then(|| name.to_string())
        })
        .collect()
}

#[test]
fn endpoint_types_match_the_header() {
    let facts = c_facts(
        "SIZE(md_endpoint); OFF(md_endpoint, vni); OFF(md_endpoint, node_ip); OFF(md_endpoint, ifindex);\n\
         OFF(md_endpoint, mac); OFF(md_endpoint, flags); OFF(md_endpoint, pad);\n\
         SIZE(md_iface); OFF(md_iface, vni); OFF(md_iface, ip); OFF(md_iface, subnet); OFF(md_iface, mask);\n\
         OFF(md_iface, mac); OFF(md_iface, flags); OFF(md_iface, pad); OFF(md_iface, gateway);\n\
         ENUM(MD_EP_LOCAL); ENUM(MD_IFACE_INTERNAL); ENUM(MD_ENDPOINTS_MAX); ENUM(MD_IFACES_MAX);",
    );
    let rust: HashMap<&str, usize> = HashMap::from([
        ("sizeof md_endpoint", size_of::<Endpoint>()),
        ("offsetof md_endpoint.vni", offset_of!(Endpoint, vni)),
        ("offsetof md_endpoint.node_ip", offset_of!(Endpoint, node_ip)),
        ("offsetof md_endpoint.ifindex", offset_of!(Endpoint, ifindex)),
        ("offsetof md_endpoint.mac", offset_of!(Endpoint, mac)),
        ("offsetof md_endpoint.flags", offset_of!(Endpoint, flags)),
        ("offsetof md_endpoint.pad", offset_of!(Endpoint, pad)),
        ("sizeof md_iface", size_of::<Iface>()),
        ("offsetof md_iface.vni", offset_of!(Iface, vni)),
        ("offsetof md_iface.ip", offset_of!(Iface, ip)),
        ("offsetof md_iface.subnet", offset_of!(Iface, subnet)),
        ("offsetof md_iface.mask", offset_of!(Iface, mask)),
        ("offsetof md_iface.mac", offset_of!(Iface, mac)),
        ("offsetof md_iface.flags", offset_of!(Iface, flags)),
        ("offsetof md_iface.pad", offset_of!(Iface, pad)),
        ("offsetof md_iface.gateway", offset_of!(Iface, gateway)),
        ("enum MD_EP_LOCAL", usize::from(FLAG_LOCAL)),
        ("enum MD_IFACE_INTERNAL", usize::from(IFACE_INTERNAL)),
        ("enum MD_ENDPOINTS_MAX", ENDPOINTS_MAX as usize),
        ("enum MD_IFACES_MAX", IFACES_MAX as usize),
    ]);
    for (name, rust_value) in &rust {
        assert_eq!(facts.get(*name).copied(), Some(*rust_value as u64), "{name}");
    }
    assert_eq!(
        header_enumerators("abi/endpoint.h"),
        ["MD_ENDPOINTS_MAX", "MD_IFACES_MAX", "MD_EP_LOCAL", "MD_IFACE_INTERNAL"]
    );
}

#[test]
fn node_types_match_the_header() {
    let facts = c_facts(
        "SIZE(md_node_config); OFF(md_node_config, vxlan_ifindex); OFF(md_node_config, node_ip);\n\
         OFF(md_node_config, ct_idle_ns); OFF(md_node_config, netns_cookie);\n\
         OFF(md_node_config, vxlan_port); OFF(md_node_config, pad16); OFF(md_node_config, pad);\n\
         SIZE(md_node); OFF(md_node, flags); OFF(md_node, pad);\n\
         SIZE(md_node_hop); OFF(md_node_hop, mac); OFF(md_node_hop, pad);\n\
         ENUM(MD_CONFIG_MAX); ENUM(MD_NODES_MAX); ENUM(MD_NODE_HOPS_MAX); ENUM(MD_NODE_MEMBER);",
    );
    let rust: HashMap<&str, usize> = HashMap::from([
        ("sizeof md_node_config", size_of::<NodeConfig>()),
        ("offsetof md_node_config.vxlan_ifindex", offset_of!(NodeConfig, vxlan_ifindex)),
        ("offsetof md_node_config.node_ip", offset_of!(NodeConfig, node_ip)),
        ("offsetof md_node_config.ct_idle_ns", offset_of!(NodeConfig, ct_idle_ns)),
        ("offsetof md_node_config.netns_cookie", offset_of!(NodeConfig, netns_cookie)),
        ("offsetof md_node_config.vxlan_port", offset_of!(NodeConfig, vxlan_port)),
        ("offsetof md_node_config.pad16", offset_of!(NodeConfig, pad16)),
        ("offsetof md_node_config.pad", offset_of!(NodeConfig, pad)),
        ("enum MD_CONFIG_MAX", CONFIG_MAX as usize),
        ("sizeof md_node", size_of::<Node>()),
        ("offsetof md_node.flags", offset_of!(Node, flags)),
        ("offsetof md_node.pad", offset_of!(Node, pad)),
        ("enum MD_NODES_MAX", NODES_MAX as usize),
        ("enum MD_NODE_MEMBER", NODE_MEMBER as usize),
        ("sizeof md_node_hop", size_of::<NodeHop>()),
        ("offsetof md_node_hop.mac", offset_of!(NodeHop, mac)),
        ("offsetof md_node_hop.pad", offset_of!(NodeHop, pad)),
        ("enum MD_NODE_HOPS_MAX", NODE_HOPS_MAX as usize),
    ]);
    for (name, rust_value) in &rust {
        assert_eq!(facts.get(*name).copied(), Some(*rust_value as u64), "{name}");
    }
    assert_eq!(
        header_enumerators("abi/node.h"),
        ["MD_CONFIG_MAX", "MD_NODES_MAX", "MD_NODE_HOPS_MAX", "MD_NODE_MEMBER"]
    );
}

#[test]
fn overlay_types_match_the_header() {
    let facts = c_facts(
        "SIZE(md_overlay_config); OFF(md_overlay_config, flags); OFF(md_overlay_config, underlay_ifindex);\n\
         OFF(md_overlay_config, underlay_mtu); OFF(md_overlay_config, pad);\n\
         SIZE(md_overlay_hop); OFF(md_overlay_hop, dmac); OFF(md_overlay_hop, smac); OFF(md_overlay_hop, ifindex);\n\
         OFF(md_overlay_hop, checked_ns);\n\
         ENUM(MD_OVERLAY_MAX); ENUM(MD_OVERLAY_HOPS_MAX); ENUM(MD_OVERLAY_FAST_PATH);",
    );
    let rust: HashMap<&str, usize> = HashMap::from([
        ("sizeof md_overlay_config", size_of::<OverlayConfig>()),
        ("offsetof md_overlay_config.flags", offset_of!(OverlayConfig, flags)),
        ("offsetof md_overlay_config.underlay_ifindex", offset_of!(OverlayConfig, underlay_ifindex)),
        ("offsetof md_overlay_config.underlay_mtu", offset_of!(OverlayConfig, underlay_mtu)),
        ("offsetof md_overlay_config.pad", offset_of!(OverlayConfig, pad)),
        ("sizeof md_overlay_hop", size_of::<OverlayHop>()),
        ("offsetof md_overlay_hop.dmac", offset_of!(OverlayHop, dmac)),
        ("offsetof md_overlay_hop.smac", offset_of!(OverlayHop, smac)),
        ("offsetof md_overlay_hop.ifindex", offset_of!(OverlayHop, ifindex)),
        ("offsetof md_overlay_hop.checked_ns", offset_of!(OverlayHop, checked_ns)),
        ("enum MD_OVERLAY_MAX", OVERLAY_MAX as usize),
        ("enum MD_OVERLAY_HOPS_MAX", HOPS_MAX as usize),
        ("enum MD_OVERLAY_FAST_PATH", FAST_PATH as usize),
    ]);
    for (name, rust_value) in &rust {
        assert_eq!(facts.get(*name).copied(), Some(*rust_value as u64), "{name}");
    }
    assert_eq!(
        header_enumerators("abi/overlay.h"),
        ["MD_OVERLAY_MAX", "MD_OVERLAY_HOPS_MAX", "MD_OVERLAY_FAST_PATH"]
    );
}

#[test]
fn encrypt_types_match_the_header() {
    use meshd_ebpf::encrypt::{self, EncryptConfig, EncryptedNet, Tunnel};
    let facts = c_facts(
        "SIZE(md_encrypt_config); OFF(md_encrypt_config, wg_ifindex); OFF(md_encrypt_config, table);\n\
         OFF(md_encrypt_config, mark); OFF(md_encrypt_config, pad);\n\
         SIZE(md_encrypted_net); OFF(md_encrypted_net, flags); OFF(md_encrypted_net, pad);\n\
         SIZE(md_tunnel); OFF(md_tunnel, flags); OFF(md_tunnel, pad);\n\
         ENUM(MD_ENCRYPT_MAX); ENUM(MD_ENCRYPTED_NETS_MAX); ENUM(MD_TUNNELS_MAX); ENUM(MD_TUNNEL_READY);",
    );
    let rust: HashMap<&str, usize> = HashMap::from([
        ("sizeof md_encrypt_config", size_of::<EncryptConfig>()),
        ("offsetof md_encrypt_config.wg_ifindex", offset_of!(EncryptConfig, wg_ifindex)),
        ("offsetof md_encrypt_config.table", offset_of!(EncryptConfig, table)),
        ("offsetof md_encrypt_config.mark", offset_of!(EncryptConfig, mark)),
        ("offsetof md_encrypt_config.pad", offset_of!(EncryptConfig, pad)),
        ("sizeof md_encrypted_net", size_of::<EncryptedNet>()),
        ("offsetof md_encrypted_net.flags", offset_of!(EncryptedNet, flags)),
        ("offsetof md_encrypted_net.pad", offset_of!(EncryptedNet, pad)),
        ("sizeof md_tunnel", size_of::<Tunnel>()),
        ("offsetof md_tunnel.flags", offset_of!(Tunnel, flags)),
        ("offsetof md_tunnel.pad", offset_of!(Tunnel, pad)),
        ("enum MD_ENCRYPT_MAX", encrypt::CONFIG_MAX as usize),
        ("enum MD_ENCRYPTED_NETS_MAX", encrypt::NETS_MAX as usize),
        ("enum MD_TUNNELS_MAX", encrypt::TUNNELS_MAX as usize),
        ("enum MD_TUNNEL_READY", encrypt::TUNNEL_READY as usize),
    ]);
    for (name, rust_value) in &rust {
        assert_eq!(facts.get(*name).copied(), Some(*rust_value as u64), "{name}");
    }
    assert_eq!(
        header_enumerators("abi/encrypt.h"),
        ["MD_ENCRYPT_MAX", "MD_ENCRYPTED_NETS_MAX", "MD_TUNNELS_MAX", "MD_TUNNEL_READY"]
    );
}

#[test]
fn lb_types_match_the_header() {
    let facts = c_facts(
        "SIZE(md_service); OFF(md_service, id); OFF(md_service, pad);\n\
         SIZE(md_ct_key); OFF(md_ct_key, client_ip); OFF(md_ct_key, vip); OFF(md_ct_key, svc); OFF(md_ct_key, client_port);\n\
         OFF(md_ct_key, port); OFF(md_ct_key, proto); OFF(md_ct_key, pad);\n\
         SIZE(md_ct_val); OFF(md_ct_val, backend_ip); OFF(md_ct_val, flags); OFF(md_ct_val, last_seen);\n\
         SIZE(md_rnat_key); OFF(md_rnat_key, backend_ip); OFF(md_rnat_key, client_ip); OFF(md_rnat_key, port);\n\
         OFF(md_rnat_key, client_port); OFF(md_rnat_key, proto); OFF(md_rnat_key, pad);\n\
         SIZE(md_flow_key); OFF(md_flow_key, addr); OFF(md_flow_key, svc); OFF(md_flow_key, port);\n\
         OFF(md_flow_key, client_port); OFF(md_flow_key, proto); OFF(md_flow_key, dir); OFF(md_flow_key, pad);\n\
         SIZE(md_flow); OFF(md_flow, addr); OFF(md_flow, port); OFF(md_flow, flags); OFF(md_flow, last_seen);\n\
         ENUM(MD_CT_FIN); ENUM(MD_MAGLEV_SIZE); ENUM(MD_MAGLEV_FINGERPRINT); ENUM(MD_MAGLEV_SLOTS);\n\
         ENUM(MD_SERVICES_MAX); ENUM(MD_MAGLEV_MAX); ENUM(MD_MAGLEV_TEMPLATE_MAX); ENUM(MD_CT_MAX);\n\
         ENUM(MD_FLOW_TABLES_MAX); ENUM(MD_FLOWS_PER_ENDPOINT); ENUM(MD_FLOW_TO_SERVICE); ENUM(MD_FLOW_REPLY);",
    );
    let rust: HashMap<&str, usize> = HashMap::from([
        ("sizeof md_service", size_of::<Service>()),
        ("offsetof md_service.id", offset_of!(Service, id)),
        ("offsetof md_service.pad", offset_of!(Service, pad)),
        ("sizeof md_ct_key", size_of::<CtKey>()),
        ("offsetof md_ct_key.client_ip", offset_of!(CtKey, client_ip)),
        ("offsetof md_ct_key.vip", offset_of!(CtKey, vip)),
        ("offsetof md_ct_key.svc", offset_of!(CtKey, svc)),
        ("offsetof md_ct_key.client_port", offset_of!(CtKey, client_port)),
        ("offsetof md_ct_key.port", offset_of!(CtKey, port)),
        ("offsetof md_ct_key.proto", offset_of!(CtKey, proto)),
        ("offsetof md_ct_key.pad", offset_of!(CtKey, pad)),
        ("sizeof md_ct_val", size_of::<CtVal>()),
        ("offsetof md_ct_val.backend_ip", offset_of!(CtVal, backend_ip)),
        ("offsetof md_ct_val.flags", offset_of!(CtVal, flags)),
        ("offsetof md_ct_val.last_seen", offset_of!(CtVal, last_seen)),
        ("sizeof md_rnat_key", size_of::<RnatKey>()),
        ("offsetof md_rnat_key.backend_ip", offset_of!(RnatKey, backend_ip)),
        ("offsetof md_rnat_key.client_ip", offset_of!(RnatKey, client_ip)),
        ("offsetof md_rnat_key.port", offset_of!(RnatKey, port)),
        ("offsetof md_rnat_key.client_port", offset_of!(RnatKey, client_port)),
        ("offsetof md_rnat_key.proto", offset_of!(RnatKey, proto)),
        ("offsetof md_rnat_key.pad", offset_of!(RnatKey, pad)),
        ("sizeof md_flow_key", size_of::<FlowKey>()),
        ("offsetof md_flow_key.addr", offset_of!(FlowKey, addr)),
        ("offsetof md_flow_key.svc", offset_of!(FlowKey, svc)),
        ("offsetof md_flow_key.port", offset_of!(FlowKey, port)),
        ("offsetof md_flow_key.client_port", offset_of!(FlowKey, client_port)),
        ("offsetof md_flow_key.proto", offset_of!(FlowKey, proto)),
        ("offsetof md_flow_key.dir", offset_of!(FlowKey, dir)),
        ("offsetof md_flow_key.pad", offset_of!(FlowKey, pad)),
        ("sizeof md_flow", size_of::<Flow>()),
        ("offsetof md_flow.addr", offset_of!(Flow, addr)),
        ("offsetof md_flow.port", offset_of!(Flow, port)),
        ("offsetof md_flow.flags", offset_of!(Flow, flags)),
        ("offsetof md_flow.last_seen", offset_of!(Flow, last_seen)),
        ("enum MD_CT_FIN", CT_FIN as usize),
        ("enum MD_MAGLEV_SIZE", MAGLEV_SIZE as usize),
        ("enum MD_MAGLEV_FINGERPRINT", MAGLEV_FINGERPRINT as usize),
        ("enum MD_MAGLEV_SLOTS", MAGLEV_SLOTS as usize),
        ("enum MD_SERVICES_MAX", SERVICES_MAX as usize),
        ("enum MD_MAGLEV_MAX", MAGLEV_MAX as usize),
        ("enum MD_MAGLEV_TEMPLATE_MAX", MAGLEV_TEMPLATE_MAX as usize),
        ("enum MD_CT_MAX", CT_MAX as usize),
        ("enum MD_FLOW_TABLES_MAX", FLOW_TABLES_MAX as usize),
        ("enum MD_FLOWS_PER_ENDPOINT", FLOWS_PER_ENDPOINT as usize),
        ("enum MD_FLOW_TO_SERVICE", FLOW_TO_SERVICE as usize),
        ("enum MD_FLOW_REPLY", FLOW_REPLY as usize),
    ]);
    for (name, rust_value) in &rust {
        assert_eq!(facts.get(*name).copied(), Some(*rust_value as u64), "{name}");
    }
    assert_eq!(
        header_enumerators("abi/lb.h"),
        [
            "MD_SERVICES_MAX",
            "MD_MAGLEV_MAX",
            "MD_MAGLEV_TEMPLATE_MAX",
            "MD_CT_MAX",
            "MD_FLOW_TABLES_MAX",
            "MD_FLOWS_PER_ENDPOINT",
            "MD_MAGLEV_SIZE",
            "MD_MAGLEV_FINGERPRINT",
            "MD_MAGLEV_SLOTS",
            "MD_CT_FIN",
            "MD_FLOW_TO_SERVICE",
            "MD_FLOW_REPLY"
        ]
    );
}

#[test]
fn mesh_types_match_the_header() {
    let facts = c_facts(
        "SIZE(md_frontend_key); OFF(md_frontend_key, addr); OFF(md_frontend_key, port);\n\
         OFF(md_frontend_key, proto); OFF(md_frontend_key, pad);\n\
         SIZE(md_frontend); OFF(md_frontend, vip); OFF(md_frontend, target_port); OFF(md_frontend, flags); OFF(md_frontend, table); ENUM(MD_FRONTEND_LOCAL);\n\
         SIZE(md_mesh_nat); OFF(md_mesh_nat, addr); OFF(md_mesh_nat, ifindex); OFF(md_mesh_nat, port);\n\
         OFF(md_mesh_nat, peer_mac); OFF(md_mesh_nat, local_mac); OFF(md_mesh_nat, pad); OFF(md_mesh_nat, last_seen);\n\
         SIZE(md_mesh_return); OFF(md_mesh_return, node_ip); OFF(md_mesh_return, vni); OFF(md_mesh_return, last_seen);\n\
         SIZE(md_sock_key); OFF(md_sock_key, cookie); OFF(md_sock_key, backend_ip);\n\
         OFF(md_sock_key, backend_port); OFF(md_sock_key, kind);\n\
         SIZE(md_sock_nat); OFF(md_sock_nat, addr); OFF(md_sock_nat, port); OFF(md_sock_nat, pad);\n\
         ENUM(MD_FRONTENDS_MAX); ENUM(MD_MESH_RNAT_MAX); ENUM(MD_MESH_RETURN_MAX);\n\
         ENUM(MD_SOCK_TABLES_MAX); ENUM(MD_SOCK_RNAT_PER_NETNS); ENUM(MD_SOCK_TRANSLATION); ENUM(MD_SOCK_LAST);",
    );
    let rust: HashMap<&str, usize> = HashMap::from([
        ("sizeof md_frontend_key", size_of::<FrontendKey>()),
        ("offsetof md_frontend_key.addr", offset_of!(FrontendKey, addr)),
        ("offsetof md_frontend_key.port", offset_of!(FrontendKey, port)),
        ("offsetof md_frontend_key.proto", offset_of!(FrontendKey, proto)),
        ("offsetof md_frontend_key.pad", offset_of!(FrontendKey, pad)),
        ("sizeof md_frontend", size_of::<Frontend>()),
        ("offsetof md_frontend.vip", offset_of!(Frontend, vip)),
        ("offsetof md_frontend.target_port", offset_of!(Frontend, target_port)),
        ("offsetof md_frontend.flags", offset_of!(Frontend, flags)),
        ("offsetof md_frontend.table", offset_of!(Frontend, table)),
        ("sizeof md_mesh_nat", size_of::<MeshNat>()),
        ("offsetof md_mesh_nat.addr", offset_of!(MeshNat, addr)),
        ("offsetof md_mesh_nat.ifindex", offset_of!(MeshNat, ifindex)),
        ("offsetof md_mesh_nat.port", offset_of!(MeshNat, port)),
        ("offsetof md_mesh_nat.peer_mac", offset_of!(MeshNat, peer_mac)),
        ("offsetof md_mesh_nat.local_mac", offset_of!(MeshNat, local_mac)),
        ("offsetof md_mesh_nat.pad", offset_of!(MeshNat, pad)),
        ("offsetof md_mesh_nat.last_seen", offset_of!(MeshNat, last_seen)),
        ("sizeof md_mesh_return", size_of::<MeshReturn>()),
        ("offsetof md_mesh_return.node_ip", offset_of!(MeshReturn, node_ip)),
        ("offsetof md_mesh_return.vni", offset_of!(MeshReturn, vni)),
        ("offsetof md_mesh_return.last_seen", offset_of!(MeshReturn, last_seen)),
        ("sizeof md_sock_key", size_of::<SockKey>()),
        ("offsetof md_sock_key.cookie", offset_of!(SockKey, cookie)),
        ("offsetof md_sock_key.backend_ip", offset_of!(SockKey, backend_ip)),
        ("offsetof md_sock_key.backend_port", offset_of!(SockKey, backend_port)),
        ("offsetof md_sock_key.kind", offset_of!(SockKey, kind)),
        ("sizeof md_sock_nat", size_of::<SockNat>()),
        ("offsetof md_sock_nat.addr", offset_of!(SockNat, addr)),
        ("offsetof md_sock_nat.port", offset_of!(SockNat, port)),
        ("offsetof md_sock_nat.pad", offset_of!(SockNat, pad)),
        ("enum MD_FRONTENDS_MAX", FRONTENDS_MAX as usize),
        ("enum MD_MESH_RNAT_MAX", MESH_RNAT_MAX as usize),
        ("enum MD_MESH_RETURN_MAX", MESH_RETURN_MAX as usize),
        ("enum MD_SOCK_TABLES_MAX", SOCK_TABLES_MAX as usize),
        ("enum MD_SOCK_RNAT_PER_NETNS", SOCK_RNAT_PER_NETNS as usize),
        ("enum MD_SOCK_TRANSLATION", SOCK_TRANSLATION as usize),
        ("enum MD_SOCK_LAST", SOCK_LAST as usize),
        ("enum MD_FRONTEND_LOCAL", FRONTEND_LOCAL as usize),
    ]);
    for (name, rust_value) in &rust {
        assert_eq!(facts.get(*name).copied(), Some(*rust_value as u64), "{name}");
    }
    assert_eq!(
        header_enumerators("abi/mesh.h"),
        [
            "MD_FRONTENDS_MAX",
            "MD_MESH_RNAT_MAX",
            "MD_MESH_RETURN_MAX",
            "MD_SOCK_TABLES_MAX",
            "MD_SOCK_RNAT_PER_NETNS",
            "MD_FRONTEND_LOCAL",
            "MD_SOCK_TRANSLATION",
            "MD_SOCK_LAST"
        ]
    );
    // A table for every namespace md_sock_clients_v1 can hold, and the node's own.
    assert_eq!(SOCK_TABLES_MAX, meshd_ebpf::sock_lb::SOCK_CLIENTS_MAX + 1);
}

#[test]
fn socket_lb_types_match_the_header() {
    let facts = c_facts(
        "SIZE(md_sock_net); OFF(md_sock_net, subnet); OFF(md_sock_net, mask); OFF(md_sock_net, addr);\n\
         OFF(md_sock_net, ifindex);\n\
         SIZE(md_sock_client); OFF(md_sock_client, count); OFF(md_sock_client, pad); OFF(md_sock_client, nets);\n\
         ENUM(MD_SOCK_CLIENTS_MAX); ENUM(MD_SOCK_CLIENT_NETS);",
    );
    let rust: HashMap<&str, usize> = HashMap::from([
        ("sizeof md_sock_net", size_of::<SockNet>()),
        ("offsetof md_sock_net.subnet", offset_of!(SockNet, subnet)),
        ("offsetof md_sock_net.mask", offset_of!(SockNet, mask)),
        ("offsetof md_sock_net.addr", offset_of!(SockNet, addr)),
        ("offsetof md_sock_net.ifindex", offset_of!(SockNet, ifindex)),
        ("sizeof md_sock_client", size_of::<SockClient>()),
        ("offsetof md_sock_client.count", offset_of!(SockClient, count)),
        ("offsetof md_sock_client.pad", offset_of!(SockClient, pad)),
        ("offsetof md_sock_client.nets", offset_of!(SockClient, nets)),
        ("enum MD_SOCK_CLIENTS_MAX", SOCK_CLIENTS_MAX as usize),
        ("enum MD_SOCK_CLIENT_NETS", SOCK_CLIENT_NETS as usize),
    ]);
    for (name, rust_value) in &rust {
        assert_eq!(facts.get(*name).copied(), Some(*rust_value as u64), "{name}");
    }
    assert_eq!(header_enumerators("abi/sock.h"), ["MD_SOCK_CLIENTS_MAX", "MD_SOCK_CLIENT_NETS"]);
}

#[test]
fn event_types_match_the_header() {
    let facts = c_facts(
        "SIZE(md_event); OFF(md_event, time_ns); OFF(md_event, ifindex); OFF(md_event, len);\n\
         OFF(md_event, saddr); OFF(md_event, daddr); OFF(md_event, backend); OFF(md_event, sport);\n\
         OFF(md_event, dport); OFF(md_event, reason); OFF(md_event, dir); OFF(md_event, proto);\n\
         OFF(md_event, type); OFF(md_event, pad);\n\
         SIZE(md_event_config); OFF(md_event_config, mask); OFF(md_event_config, pad);\n\
         OFF(md_event_config, interval_ns); OFF(md_event_config, burst_ns);\n\
         SIZE(md_event_bucket); OFF(md_event_bucket, last_ns); OFF(md_event_bucket, credit_ns);\n\
         OFF(md_event_bucket, emitted); OFF(md_event_bucket, suppressed); OFF(md_event_bucket, lost);\n\
         ENUM(MD_EVENTS_RING_BYTES); ENUM(MD_EVENT_CONFIG_MAX); ENUM(MD_EVENT_BUCKETS_MAX);\n\
         ENUM(MD_EVENT_DROP); ENUM(MD_EVENT_FLOW); ENUM(MD_EVENT_DIR_UNKNOWN);\n\
         ENUM(MD_EVENT_FLOW_PACKET); ENUM(MD_EVENT_FLOW_SOCKET);",
    );
    let rust: HashMap<&str, usize> = HashMap::from([
        ("sizeof md_event", size_of::<Event>()),
        ("offsetof md_event.time_ns", offset_of!(Event, time_ns)),
        ("offsetof md_event.ifindex", offset_of!(Event, ifindex)),
        ("offsetof md_event.len", offset_of!(Event, len)),
        ("offsetof md_event.saddr", offset_of!(Event, saddr)),
        ("offsetof md_event.daddr", offset_of!(Event, daddr)),
        ("offsetof md_event.backend", offset_of!(Event, backend)),
        ("offsetof md_event.sport", offset_of!(Event, sport)),
        ("offsetof md_event.dport", offset_of!(Event, dport)),
        ("offsetof md_event.reason", offset_of!(Event, reason)),
        ("offsetof md_event.dir", offset_of!(Event, dir)),
        ("offsetof md_event.proto", offset_of!(Event, proto)),
        ("offsetof md_event.type", offset_of!(Event, kind)),
        ("offsetof md_event.pad", offset_of!(Event, pad)),
        ("sizeof md_event_config", size_of::<EventConfig>()),
        ("offsetof md_event_config.mask", offset_of!(EventConfig, mask)),
        ("offsetof md_event_config.pad", offset_of!(EventConfig, pad)),
        ("offsetof md_event_config.interval_ns", offset_of!(EventConfig, interval_ns)),
        ("offsetof md_event_config.burst_ns", offset_of!(EventConfig, burst_ns)),
        ("sizeof md_event_bucket", size_of::<EventBucket>()),
        ("offsetof md_event_bucket.last_ns", offset_of!(EventBucket, last_ns)),
        ("offsetof md_event_bucket.credit_ns", offset_of!(EventBucket, credit_ns)),
        ("offsetof md_event_bucket.emitted", offset_of!(EventBucket, emitted)),
        ("offsetof md_event_bucket.suppressed", offset_of!(EventBucket, suppressed)),
        ("offsetof md_event_bucket.lost", offset_of!(EventBucket, lost)),
        ("enum MD_EVENTS_RING_BYTES", RING_BYTES as usize),
        ("enum MD_EVENT_CONFIG_MAX", EVENT_CONFIG_MAX as usize),
        ("enum MD_EVENT_BUCKETS_MAX", BUCKETS_MAX as usize),
        ("enum MD_EVENT_DROP", usize::from(TYPE_DROP)),
        ("enum MD_EVENT_FLOW", usize::from(TYPE_FLOW)),
        ("enum MD_EVENT_DIR_UNKNOWN", usize::from(DIR_UNKNOWN)),
        ("enum MD_EVENT_FLOW_PACKET", usize::from(FLOW_PACKET)),
        ("enum MD_EVENT_FLOW_SOCKET", usize::from(FLOW_SOCKET)),
    ]);
    for (name, rust_value) in &rust {
        assert_eq!(facts.get(*name).copied(), Some(*rust_value as u64), "{name}");
    }
    assert_eq!(
        header_enumerators("abi/events.h"),
        [
            "MD_EVENTS_RING_BYTES",
            "MD_EVENT_CONFIG_MAX",
            "MD_EVENT_BUCKETS_MAX",
            "MD_EVENT_DROP",
            "MD_EVENT_FLOW",
            "MD_EVENT_DIR_UNKNOWN",
            "MD_EVENT_FLOW_PACKET",
            "MD_EVENT_FLOW_SOCKET"
        ]
    );
}
