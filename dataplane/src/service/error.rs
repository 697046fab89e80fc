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
    #[error("invalid --publish {0:?}: use PUBLISHED:TARGET[/tcp|/udp] with ports 1-65535")]
    PublishSyntax(String),
    #[error("port {0} is published by service {1:?} already")]
    PortTaken(PublishedPort, String),
    #[error("port {0} is meshd's own (the cluster's VXLAN data path port, or a node's gossip port)")]
    PortReserved(PublishedPort),
    #[error("invalid --publish-rm {0:?}: use PUBLISHED[:TARGET][/tcp|/udp]")]
    UnpublishSyntax(String),
    #[error("service {0:?} does not publish {1}")]
    NotPublished(String, String),
    #[error("service update {0:?} changes nothing: give --publish-add, --publish-rm or --endpoint-mode")]
    NothingToUpdate(String),
    #[error("service {service:?} is on network {service_network:?}, not {network:?}")]
    WrongNetwork { service: String, service_network: String, network: String },
}
