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
    #[error("invalid --publish {0:?}: use PUBLISHED:TARGET[/tcp|/udp] with ports 1-65535")]
    PublishSyntax(String),
    #[error("port {0} is published by service {1:?} already")]
    PortTaken(PublishedPort, String),
    #[error("port {0} is meshd's own (VXLAN 4789/udp, or a node's gossip port)")]
    PortReserved(PublishedPort),
    #[error("service {service:?} is on network {service_network:?}, not {network:?}")]
    WrongNetwork { service: String, service_network: String, network: String },
}
