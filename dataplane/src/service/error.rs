//! Why a service request was refused.

use crate::state::PublishedPort;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Name(#[from] crate::name_rules::NameError),
    #[error("a service named {0:?} already exists")]
    Exists(String),
    #[error("no network named {0:?}")]
    NoNetwork(String),
    #[error("no service named {0:?}")]
    NotFound(String),
    #[error("services in dnsrr mode have no VIP and cannot publish ports (as in Swarm)")]
    DnsrrPublish,
    #[error("network {0:?} is internal (--internal): nothing outside the overlay reaches it, so it cannot publish ports")]
    InternalPublish(String),
    #[error("invalid --publish {0:?}: {1} (use PUBLISHED[-END]:TARGET[-END][/tcp|/udp] or published=..,target=..[,protocol=tcp|udp][,mode=ingress|host][,address=IP|CIDR])")]
    PublishSyntax(String, String),
    #[error("port {0} is published by service {1:?} already, on addresses that overlap ({2}); two services share a port only on addresses that cannot overlap")]
    PortTaken(PublishedPort, String, PublishedPort),
    #[error("port {0} is meshd's own (the cluster's VXLAN data path port, or a node's gossip port)")]
    PortReserved(PublishedPort),
    #[error("invalid --publish-rm {0:?}: {1} (use PUBLISHED[-END][:TARGET[-END]][/tcp|/udp] or published=..[,target=..][,protocol=..][,address=..])")]
    UnpublishSyntax(String, String),
    #[error("service {service:?} would publish {entries} entries and {ports} ports: at most {max_entries} entries (a range is one) and {max_ports} ports")]
    TooManyPorts { service: String, entries: usize, ports: usize, max_entries: usize, max_ports: usize },
    #[error("service {0:?} does not publish {1}")]
    NotPublished(String, String),
    #[error("service update {0:?} changes nothing: give --publish-add, --publish-rm or --endpoint-mode")]
    NothingToUpdate(String),
    #[error("service {service:?} is on network {service_network:?}, not {network:?}")]
    WrongNetwork { service: String, service_network: String, network: String },
}
