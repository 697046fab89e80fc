//! The one gate every delta passes before it is merged, whoever sent it and however it came
//! (a gossiped broadcast, a push-pull, the join answer, the state file at start, a local write):
//!
//! 1. its version is not from the future (beyond the clock-skew window);
//! 2. its writer is not a removed node;
//! 3. its writer's key is certified by the cluster CA (the certificate is in the writer's node
//!    record; a node record brings its own), and the signature is that key's;
//! 4. the writer may write it: node-owned records (its node record, endpoints) only by their
//!    owner, cluster-wide records (networks, services, address blocks, availability, secrets,
//!    roles, removals) only by a manager;
//! 5. the record is well formed, as a local create would have checked (`state::validate`);
//! 6. what a node claims for itself is its own (`state::claims`): an endpoint's address lies in
//!    a block the managers granted the writer, and the writer is under its endpoint bound.
//!
//! A rejected delta changes nothing and is counted by reason (`meshctl stats`). A delta no newer
//! than what the state holds is not checked at all: it could change nothing. A claim that only
//! a grant not heard of yet could prove is held back ([`Verdict::Hold`]), not rejected.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rustls::pki_types::UnixTime;

use crate::identity::NodeId;
use crate::state::claims::{self, Claim, ClaimError};
use crate::state::{validate, version, Change, ClusterState, Role, SignedDelta, Version};
use crate::trust::ca::FOUNDER_DOMAIN;
use crate::trust::certs::CaAnchor;
use crate::trust::keys::PublicKey;
use crate::trust::record;

/// How long a checked certificate is trusted without checking it again (its validity period is
/// checked on every re-check, so an expired certificate stops working within this long).
const RECHECK_CERT_AFTER: Duration = Duration::from_secs(30);

/// Why a delta was not merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Versioned beyond the clock-skew window.
    FromTheFuture,
    /// Written by a removed node.
    Revoked,
    /// Its writer's certificate is not known here (yet).
    UnknownWriter,
    /// The writer's certificate is not the CA's, is expired, or is not the writer's.
    BadCertificate,
    /// The signature is not the writer's.
    BadSignature,
    /// A node-owned record written by another node.
    NotOwner,
    /// A cluster-wide record written by a worker.
    NotManager,
    /// A record no local create would have accepted.
    Invalid,
    /// An endpoint at an address not granted to its writer (another node's block, outside
    /// the subnet, reserved).
    NotGranted,
    /// An endpoint beyond its writer's bound (`state::claims::MAX_ENDPOINTS_PER_NODE`).
    OverBound,
}

/// What [`Admission::admit`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Merge it.
    Admit,
    /// The state already has this version or a newer one: nothing to do.
    NotNewer,
    /// A claim that only a grant not heard of here yet can prove: keep it and try again when
    /// the grants change (`gossip::parked`).
    Hold,
}

/// The admission gate, with the certificates it has checked.
#[derive(Debug)]
pub struct Admission {
    anchor: CaAnchor,
    /// This node: its own claims come from its own allocator, which knows of grants gossip
    /// has not brought back yet, and are not held back.
    me: NodeId,
    /// Writer -> (its certificate, the key it certifies, when it was checked).
    certified: HashMap<NodeId, (Vec<u8>, PublicKey, Instant)>,
    /// The cluster's data path port: no service may publish it.
    data_path_port: u16,
}

impl Admission {
    pub fn new(anchor: CaAnchor, me: NodeId) -> Admission {
        Admission {
            anchor,
            me,
            certified: HashMap::new(),
            data_path_port: crate::identity::settings::DEFAULT_DATA_PATH_PORT,
        }
    }

    /// The cluster's data path port, when it is not the default.
    pub fn with_data_path_port(self, data_path_port: u16) -> Admission {
        Admission { data_path_port, ..self }
    }

    pub fn anchor(&self) -> &CaAnchor {
        &self.anchor
    }

    /// Whether `signed` may be merged into `state`; why not if not (with a detail for the log).
    pub fn admit(
        &mut self,
        state: &ClusterState,
        signed: &SignedDelta,
        now_millis: u64,
    ) -> Result<Verdict, (Rejection, String)> {
        let delta = &signed.delta;
        let writer = delta.version.node;
        if state.version_of(&delta.key()).is_some_and(|held| held >= delta.version) {
            return Ok(Verdict::NotNewer);
        }
        if !version::within_skew(&delta.version, now_millis) {
            return Err((
                Rejection::FromTheFuture,
                format!("version {} from {writer}", delta.version.lamport),
            ));
        }
        if state.is_revoked(&writer) {
            return Err((Rejection::Revoked, format!("{writer} was removed")));
        }
        let key = match &delta.change {
            // A node record carries the certificate that certifies its own signature.
            Change::Node { id, record: Some(record) } if *id == writer => {
                validate::node(record).map_err(|e| (Rejection::Invalid, e))?;
                let key = self.certify(writer, &record.cert.0)?;
                if let Some(grant) = &record.founder {
                    if !self.anchor.public.verify(FOUNDER_DOMAIN, writer.as_bytes(), &grant.0) {
                        return Err((
                            Rejection::Invalid,
                            format!("{writer}: a founder grant not signed by the CA"),
                        ));
                    }
                }
                key
            }
            _ => {
                let cert = state.nodes.get(&writer).map(|n| n.cert.0.clone());
                let cert =
                    cert.ok_or((Rejection::UnknownWriter, format!("no certificate of {writer} yet")))?;
                self.certify(writer, &cert)?
            }
        };
        if !record::verify(&key, signed) {
            return Err((Rejection::BadSignature, format!("a delta claiming to be {writer}'s")));
        }
        authorize(state, &delta.change, writer, delta.version, self.data_path_port)?;
        if let Change::Endpoint { owner, id, record } = &delta.change {
            let claim = match record {
                Some(record) => claims::endpoint(state, owner, id, record),
                None => claims::endpoint_removal(state, owner, id),
            };
            match claim {
                Claim::Granted => {}
                Claim::Unproven if *owner == self.me => {}
                Claim::Unproven => return Ok(Verdict::Hold),
                Claim::Refused(error @ ClaimError::TooMany) => {
                    return Err((Rejection::OverBound, format!("an endpoint of {writer}: {error}")))
                }
                Claim::Refused(error) => {
                    return Err((Rejection::NotGranted, format!("{writer}'s endpoint {id:?}: {error}")))
                }
            }
        }
        Ok(Verdict::Admit)
    }

    /// The key `cert` certifies for `writer`, checked against the CA (or remembered from a
    /// recent check of the same certificate).
    fn certify(&mut self, writer: NodeId, cert: &[u8]) -> Result<PublicKey, (Rejection, String)> {
        if let Some((known, key, checked)) = self.certified.get(&writer) {
            if known.as_slice() == cert && checked.elapsed() < RECHECK_CERT_AFTER {
                return Ok(*key);
            }
        }
        let (id, key) = self
            .anchor
            .verify(cert, UnixTime::now())
            .map_err(|e| (Rejection::BadCertificate, format!("{writer}: {e}")))?;
        if id != writer {
            return Err((Rejection::BadCertificate, format!("{writer} presented {id}'s certificate")));
        }
        self.certified.insert(writer, (cert.to_vec(), key, Instant::now()));
        Ok(key)
    }
}

/// Whether `writer` may write `change` (at `version`), and whether it is well formed.
fn authorize(
    state: &ClusterState,
    change: &Change,
    writer: NodeId,
    version: Version,
    data_path_port: u16,
) -> Result<(), (Rejection, String)> {
    let owner = |owner: &NodeId| {
        if *owner == writer {
            Ok(())
        } else {
            Err((Rejection::NotOwner, format!("{writer} wrote a record of {owner}")))
        }
    };
    let manager = || {
        if was_manager(state, writer, version) {
            Ok(())
        } else {
            Err((Rejection::NotManager, format!("{writer} is not a manager")))
        }
    };
    let valid = |result: Result<(), String>| result.map_err(|e| (Rejection::Invalid, e));
    match change {
        Change::Node { id, .. } => owner(id),
        Change::Endpoint { owner: of, record, .. } => {
            owner(of)?;
            record.as_ref().map_or(Ok(()), |r| valid(validate::endpoint(r)))
        }
        Change::Manager { id, status } => {
            owner(id)?;
            status.as_ref().map_or(Ok(()), |s| valid(validate::manager_status(s)))
        }
        // Grants of the managers only: a node that could claim a block itself could take any
        // node's addresses (a newer claim wins) and every address of a network.
        Change::Block { .. } | Change::Availability { .. } | Change::Role { .. } => manager(),
        Change::Network { name, record } => {
            manager()?;
            record.as_ref().map_or(Ok(()), |r| valid(validate::network(state, name, r)))
        }
        Change::Service { name, record } => {
            manager()?;
            record.as_ref().map_or(Ok(()), |r| valid(validate::service(state, name, r, data_path_port)))
        }
        Change::Secrets { value } => {
            manager()?;
            let value =
                value.as_ref().ok_or((Rejection::Invalid, "the secrets cannot be emptied".to_string()))?;
            valid(validate::secrets(state.secrets.get(&()), value))
        }
        Change::Revocation { id, record } => {
            manager()?;
            match record {
                None => Err((Rejection::Invalid, "a removal cannot be undone".into())),
                Some(_) if *id == writer => {
                    Err((Rejection::Invalid, "a manager cannot remove itself".into()))
                }
                Some(_) => Ok(()),
            }
        }
    }
}

/// Whether `node` may write cluster-wide records versioned `version`: it is a manager, or it
/// was one until a demotion newer than `version` (what it wrote then stays valid).
pub fn was_manager(state: &ClusterState, node: NodeId, version: Version) -> bool {
    if state.role_of(&node) == Role::Manager {
        return true;
    }
    state
        .roles
        .entry(&node)
        .is_some_and(|e| e.value.is_some_and(|r| r.previously_manager) && version < e.version)
}
