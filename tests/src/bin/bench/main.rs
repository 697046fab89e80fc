//! Benchmarks, run by `cargo xtask bench <suite>` (release build, as root). Each suite measures
//! meshd side by side with a baseline in the same run and prints a table of figures and ratios;
//! `docs/benchmarks.md` records them. Nothing here asserts a speed: benchmarks report, tests check.
//!
//! Suites:
//! - `gossip`: failure detection (5 and 20 nodes, both cores saturated), convergence of a change
//!   (5, 20, 50 nodes), an in-process simulation of 1,000 nodes, and the idle cost of one meshd
//!   in a 50-node cluster. Baseline: the same meshd with memberlist's LAN timings.
//!
//! - `overlay`: TCP throughput, 64-byte UDP packets/s and RTT p50/p99 container to container
//!   across nodes, paths taking turns over rounds: plain underlay, a Docker-style kernel overlay
//!   (bridge + VXLAN), meshd with its fast path, meshd with `--overlay-fast-path off`.
//!
//! - `mesh`: wrk against nginx straight to a backend, through a service VIP, through a published
//!   port (meshd's routing mesh) and through a Swarm-style nftables mesh; Maglev disruption; the
//!   time to program 10,000 services with 100,000 backends. `mesh-paths`: the wrk part alone
//!   (for comparing two builds of meshd, which the rest does not depend on).
//!
//! - `dns`: dnsperf against the embedded DNS, unbound and dnsmasq serving the same record.
//!
//! - `managers`: `network create`, `service create` and `attach` with 1, 3 and 5 managers in
//!   the Raft group (and, with `MESHD_BASELINE_BIN_DIR`, a build from before it).
//!
//! - `runtimes`: `podman run` / `docker run` to the first answered request, through a VIP on
//!   another node (meshd-cni, the meshd Docker driver) and on the runtime's own bridge.
//!
//! - `events`: the cost of `meshctl monitor` (drops only, and every flow event) on overlay
//!   throughput and on the VIP's new-connection rate, against no monitor.
//!
//! - `scale`: clusters of 10 to 100 nodes with 10 services and 50 tasks per node: time until
//!   every node's tables agree, the convergence of one change, meshd's memory and CPU at rest.
//!
//! - `soak`: 20 minutes of kills, partitions, drains and rolling replacements under two wrk
//!   loads: failed requests, agent memory growth, entries left that do not match the cluster.
//!
//! `--quick` runs smaller sizes and fewer trials (a smoke run of the benchmark code itself).

mod alloc;
mod dns;
mod events;
mod gossip;
mod lb_scale;
mod logs;
mod managers;
mod mesh;
mod overlay;
mod runtimes;
mod scale;
mod sim;
mod soak;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let suites: Vec<&str> = args.iter().map(String::as_str).filter(|a| !a.starts_with("--")).collect();
    if suites.is_empty() {
        eprintln!("usage: bench [--quick] gossip|gossip-sim|overlay|mesh|mesh-paths|lb-scale|dns|managers|runtimes|events|map-walk|scale|soak");
        std::process::exit(2);
    }
    for suite in suites {
        match suite {
            "gossip" => {
                gossip::run(quick);
                sim::run(quick);
            }
            "gossip-sim" => sim::run(quick),
            "overlay" => overlay::run_suite(quick),
            "mesh" => {
                mesh::run_suite(quick);
                lb_scale::run(quick);
            }
            "mesh-paths" => mesh::run_suite(quick),
            "dns" => dns::run_suite(quick),
            "managers" => managers::run(quick),
            "events" => {
                events::run_suite(quick);
                events::walk_cost();
            }
            "map-walk" => events::walk_cost(),
            "lb-scale" => lb_scale::run(quick),
            "runtimes" => runtimes::run_suite(quick),
            "scale" => scale::run(quick),
            "soak" => soak::run(quick),
            other => {
                eprintln!("bench: unknown suite {other:?} (known: gossip, gossip-sim, overlay, mesh, mesh-paths, lb-scale, dns, managers, runtimes, events, map-walk, scale, soak)");
                std::process::exit(2);
            }
        }
    }
}
