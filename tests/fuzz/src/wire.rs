//! What arrives on port 7946: gossip datagrams (UDP), member and join frames (TCP), and the
//! managers' requests and answers on the lasting TLS channels (Raft and proposals).

use std::cell::RefCell;
use std::time::Duration;

use foca::{AccumulatingRuntime, Foca, PostcardCodec};
use meshd::gossip::broadcast::{self, lock, DeltaHandler};
use meshd::gossip::config::GossipConfig;
use meshd::gossip::crypto::{Keyring, Purpose};
use meshd::gossip::join;
use meshd::gossip::member::MemberId;
use meshd::gossip::wire::{self, TcpMessage, MAX_JOIN_FRAME};
use meshd::identity::Secret;
use meshd::manager::decisions::Decided;
use meshd::manager::transport::{self, Request, Response};
use meshd::state::SignedDelta;
use meshd::trust::ca::JoinRole;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::universe::{self, universe};

type Swim = Foca<MemberId, PostcardCodec, StdRng, DeltaHandler>;

/// Node 1's SWIM instance, as `gossip::start` builds it, over a fresh handler; and that
/// handler's state, which the agent shares with it.
fn swim() -> (Swim, DeltaHandler) {
    let handler = universe::handler();
    let shared = DeltaHandler { shared: handler.shared.clone(), stats: handler.stats.clone() };
    let foca = Foca::with_custom_broadcast(
        universe::member(0),
        GossipConfig::default().foca(16),
        StdRng::seed_from_u64(7),
        PostcardCodec,
        handler,
    );
    (foca, shared)
}

thread_local! {
    static RUNTIME: RefCell<tokio::runtime::Runtime> = RefCell::new(
        tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a runtime"),
    );
}

/// A gossip datagram: the agent opens it with the gossip keyring, then hands the payload to
/// foca, whose custom broadcasts (state deltas) go through meshd's `DeltaHandler`. The fuzzer
/// cannot forge the AEAD tag, so the payload is also handed to foca as if it had opened: a
/// member holds the key, and a compromised one sends anything under it.
pub fn gossip_udp(data: &[u8]) {
    let ring = Keyring::new(Purpose::Gossip, &[Secret::from_bytes([1; 32])]);
    let _ = ring.open(data);
    let (mut foca, handler) = swim();
    let mut runtime = AccumulatingRuntime::new();
    let _ = foca.handle_data(data, &mut runtime);
    // Whatever foca accepted, the state it merged stays within admission's rules.
    let shared = lock(&handler.shared);
    assert!(shared.state.dump().len() >= universe().records.len(), "a datagram removed a node record");
}

/// TCP 7946: length-prefixed frames, read with the join limit as the server does for anyone not
/// yet authenticated; each decoded frame is then handled as the agent handles a member's
/// request (push-pull merges state and membership) or a manager a joiner's (the proof check).
pub fn gossip_tcp(data: &[u8]) {
    let frames = RUNTIME.with(|rt| {
        rt.borrow().block_on(async {
            let mut reader = data;
            let mut frames = Vec::new();
            while let Ok(frame) =
                wire::read_frame_limited(&mut reader, MAX_JOIN_FRAME, Duration::from_secs(1)).await
            {
                frames.push(frame);
            }
            frames
        })
    });
    // A stream that is not framed at all is still one message's bytes.
    let frames = if frames.is_empty() { vec![data.to_vec()] } else { frames };
    for frame in frames {
        let Ok(message) = wire::decode(&frame) else { continue };
        member_or_join(message);
    }
}

fn member_or_join(message: TcpMessage) {
    let u = universe();
    match message {
        TcpMessage::PushPull { state, members, .. } => {
            let (mut foca, handler) = swim();
            let mut runtime = AccumulatingRuntime::new();
            for signed in state {
                gossip_signed(&mut foca, &handler, &signed);
            }
            let _ = foca.apply_many(members.into_iter(), false, &mut runtime);
        }
        request @ TcpMessage::JoinRequest { .. } => {
            let state = lock(&universe::handler().shared).state.clone();
            let peer = universe::addr(1);
            let _ = join::admit(&u.founder, &state, request, JoinRole::Worker, peer, Duration::from_secs(60));
        }
        _ => {}
    }
}

/// As `Agent::gossip_signed`: through foca, or merged directly when too big for a datagram.
fn gossip_signed(foca: &mut Swim, handler: &DeltaHandler, signed: &SignedDelta) {
    let bytes = broadcast::encode(signed);
    if foca.add_broadcast(&bytes).is_err() {
        broadcast::merge(&mut lock(&handler.shared), signed.clone(), &handler.stats);
    }
}

/// A request on a managers' channel (what `manager::serve` decodes from a peer), and an answer
/// (what `transport::call` decodes from one). A proposal is applied to the managers' state
/// machine, as the leader does once the group decided it; a snapshot's data is decoded as the
/// state machine installs it.
pub fn raft(data: &[u8]) {
    match transport::decode::<Request>(data) {
        Ok(Request::Propose(command)) => {
            let mut decided = decided();
            let again = command.clone();
            let first = decided.apply(command);
            // A command retried after an unknown outcome is applied once: same decision.
            assert_eq!(decided.apply(again), first, "a retried command decided differently");
        }
        Ok(Request::Snapshot { data, .. }) => {
            let _ = postcard::from_bytes::<Decided>(&data);
        }
        _ => {}
    }
    let _ = transport::decode::<Response>(data);
}

/// The decided state of a cluster that knows the universe's nodes.
fn decided() -> Decided {
    let handler = universe::handler();
    let state = lock(&handler.shared).state.clone();
    Decided::from_state(&state)
}
