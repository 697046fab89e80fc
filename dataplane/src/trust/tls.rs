//! Mutual TLS on TCP 7946: both sides present a certificate of the cluster CA, and each accepts
//! only a peer whose certificate chains to that CA, is valid now, and is not revoked. Peers are
//! known by node ID (the hash of the certified key), never by host name.
//!
//! TLS 1.3 only, the `ring` provider only (no aws-lc, no cmake), and no session resumption: a
//! resumed session would skip the certificate checks, and with them the revocation check.

use std::collections::HashSet;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

use super::ca::node_dns_name;
use super::certs::{node_of, CaAnchor};
use super::keys::NodeKey;
use crate::identity::NodeId;

/// The removed nodes, shared with the gossip agent (which replaces it on every snapshot).
pub type Revoked = Arc<ArcSwap<HashSet<NodeId>>>;

/// A node's TLS configurations, rebuilt when its certificate is renewed.
#[derive(Clone)]
pub struct TlsConfigs {
    pub server: Arc<rustls::ServerConfig>,
    pub client: Arc<rustls::ClientConfig>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Both configurations for a node holding `key`, certified by `cert` (DER).
pub fn configs(anchor: &CaAnchor, key: &NodeKey, cert: &[u8], revoked: Revoked) -> Result<TlsConfigs, Error> {
    let provider = provider();
    let chain = vec![CertificateDer::from(cert.to_vec())];
    let private = || PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.pkcs8().to_vec()));

    let inner = WebPkiClientVerifier::builder_with_provider(anchor.roots(), provider.clone())
        .build()
        .map_err(|e| Error::General(e.to_string()))?;
    let clients = Arc::new(PeerClientVerifier { inner, revoked: revoked.clone() });
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(clients)
        .with_single_cert(chain.clone(), private())?;
    server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    server.send_tls13_tickets = 0;

    let servers = Arc::new(PeerServerVerifier {
        anchor: anchor.clone(),
        algorithms: provider.signature_verification_algorithms,
        revoked,
    });
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(servers)
        .with_client_auth_cert(chain, private())?;
    client.resumption = rustls::client::Resumption::disabled();
    Ok(TlsConfigs { server: Arc::new(server), client: Arc::new(client) })
}

/// The name to dial a node by: its ID. Dialling by this name makes the client require that the
/// peer is that very node; dialling by address only requires a member.
pub fn server_name(node: Option<NodeId>, addr: std::net::IpAddr) -> ServerName<'static> {
    match node.and_then(|id| ServerName::try_from(node_dns_name(&id)).ok()) {
        Some(name) => name,
        None => ServerName::IpAddress(addr.into()),
    }
}

/// The node a TLS peer proved to be (its certificate was checked in the handshake).
pub fn peer_node(certificates: Option<&[CertificateDer<'_>]>) -> Option<NodeId> {
    certificates?.first().and_then(node_of)
}

/// The node a TLS peer proved to be, and its certified key.
pub fn peer_identity(
    certificates: Option<&[CertificateDer<'_>]>,
) -> Option<(NodeId, super::keys::PublicKey)> {
    let cert = certificates?.first()?;
    let parsed = rustls::server::ParsedCertificate::try_from(cert).ok()?;
    let key = super::keys::PublicKey::from_spki(&parsed.subject_public_key_info())?;
    Some((key.node_id(), key))
}

fn check_revoked(cert: &CertificateDer<'_>, revoked: &Revoked) -> Result<NodeId, Error> {
    let id = node_of(cert).ok_or(Error::InvalidCertificate(CertificateError::BadEncoding))?;
    if revoked.load().contains(&id) {
        return Err(Error::InvalidCertificate(CertificateError::Revoked));
    }
    Ok(id)
}

/// The client's check of the server: the chain to the cluster CA, validity, not revoked, and,
/// when dialled by node name, that it is that node.
#[derive(Debug)]
struct PeerServerVerifier {
    anchor: CaAnchor,
    algorithms: WebPkiSupportedAlgorithms,
    revoked: Revoked,
}

impl ServerCertVerifier for PeerServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let (id, _) = self.anchor.verify(end_entity, now).map_err(|e| {
            Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(e))))
        })?;
        check_revoked(end_entity, &self.revoked)?;
        if let ServerName::DnsName(name) = server_name {
            if name.as_ref() != node_dns_name(&id) {
                return Err(Error::InvalidCertificate(CertificateError::NotValidForName));
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The server's check of a client: rustls' own chain check against the cluster CA, then the
/// revocation list.
#[derive(Debug)]
struct PeerClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    revoked: Revoked,
}

impl ClientCertVerifier for PeerClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.inner.verify_client_cert(end_entity, intermediates, now)?;
        check_revoked(end_entity, &self.revoked)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::ca::ClusterCa;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct Node {
        key: NodeKey,
        configs: TlsConfigs,
    }

    fn node(ca: &ClusterCa, revoked: &Revoked) -> Node {
        let key = NodeKey::generate().unwrap();
        let cert = ca.issue(&key.public(), 3600).unwrap();
        let configs = configs(&CaAnchor::new(ca.cert()).unwrap(), &key, &cert.der, revoked.clone()).unwrap();
        Node { key, configs }
    }

    /// One exchange from `client` to `server`, dialled by `name`: the IDs each side saw.
    async fn exchange(
        server: &Node,
        client: &Node,
        name: ServerName<'static>,
    ) -> Result<(NodeId, NodeId), String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(server.configs.server.clone());
        let accepted = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
            let peer = peer_node(tls.get_ref().1.peer_certificates()).unwrap();
            tls.write_all(peer.as_bytes()).await.map_err(|e| e.to_string())?;
            tls.shutdown().await.map_err(|e| e.to_string())?;
            Ok::<NodeId, String>(peer)
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(client.configs.client.clone());
        let mut tls = connector.connect(name, tcp).await.map_err(|e| e.to_string())?;
        let server_id = peer_node(tls.get_ref().1.peer_certificates()).unwrap();
        let mut seen = Vec::new();
        tls.read_to_end(&mut seen).await.map_err(|e| e.to_string())?;
        let client_id = accepted.await.unwrap()?;
        assert_eq!(seen, client_id.as_bytes());
        Ok((server_id, client_id))
    }

    #[tokio::test]
    async fn members_talk_and_know_each_other_by_node_id() {
        let ca = ClusterCa::create().unwrap();
        let revoked: Revoked = Arc::new(ArcSwap::from_pointee(HashSet::new()));
        let (a, b) = (node(&ca, &revoked), node(&ca, &revoked));
        let ip = "127.0.0.1".parse().unwrap();
        let by_name = server_name(Some(a.key.node_id()), ip);
        assert_eq!(exchange(&a, &b, by_name).await.unwrap(), (a.key.node_id(), b.key.node_id()));
        assert!(exchange(&a, &b, server_name(None, ip)).await.is_ok(), "by address: any member");
        // Dialling a as b's name: refused.
        assert!(exchange(&a, &b, server_name(Some(b.key.node_id()), ip)).await.is_err());
        // A node of another cluster is refused either way.
        let stranger = node(&ClusterCa::create().unwrap(), &revoked);
        assert!(exchange(&a, &stranger, server_name(None, ip)).await.is_err());
        assert!(exchange(&stranger, &a, server_name(None, ip)).await.is_err());
        // Once b is revoked, neither side accepts it.
        revoked.store(Arc::new(HashSet::from([b.key.node_id()])));
        assert!(exchange(&a, &b, server_name(None, ip)).await.is_err());
        assert!(exchange(&b, &a, server_name(None, ip)).await.is_err());
    }
}
