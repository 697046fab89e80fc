//! The slow path behind the fast one: datagrams the fast path does not answer go, unchanged,
//! through what hickory-server's UDP loop did before: hickory's request parser, meshd's
//! [`MeshHandler`] on a task of their own, and hickory's encoder with the asker's UDP size (a
//! longer answer is cut at a record boundary and flagged TC). What hickory-server drops, this
//! drops (a response, a datagram whose header does not parse); what it answers FORMERR (a
//! header that parses, followed by garbage), this answers FORMERR.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

use hickory_proto::op::{Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncoder};
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::net::NetError;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder, Queries};

use crate::handler::MeshHandler;
use crate::udp_size::PLAIN_LIMIT;

/// Datagrams of one namespace waiting for the slow path; more are dropped (counted in
/// `udp_slow_queue_full`): the asker retries, as after any lost datagram.
pub const QUEUE: usize = 256;

/// One datagram for the slow path.
#[derive(Debug)]
pub struct Datagram {
    pub bytes: Vec<u8>,
    pub src: SocketAddr,
}

/// Serves one namespace's slow datagrams until the fast listener goes (its sender drops).
pub async fn dispatch(
    mut queue: tokio::sync::mpsc::Receiver<Datagram>,
    handler: MeshHandler,
    socket: Arc<UdpSocket>,
) {
    while let Some(datagram) = queue.recv().await {
        let (handler, socket) = (handler.clone(), socket.clone());
        // A task per request, as hickory-server does: a forwarded query waits on its upstream
        // (bounded by the namespace's forwarding slots) without holding up the next one.
        tokio::spawn(async move { answer(datagram, &handler, socket).await });
    }
}

/// Answers one datagram as hickory-server's UDP loop would.
pub async fn answer(datagram: Datagram, handler: &MeshHandler, socket: Arc<UdpSocket>) {
    let Datagram { bytes, src } = datagram;
    let reply = UdpReply { socket, dst: src };
    let request = match Request::from_bytes(bytes.clone(), src, Protocol::Udp) {
        Ok(request) => request,
        Err(_) => {
            // Not even a header: dropped. A header and garbage: FORMERR without a question.
            let Ok(header) = Header::read(&mut BinDecoder::new(&bytes)) else { return };
            if header.metadata.message_type == MessageType::Response {
                return;
            }
            let Ok(queries) = Queries::read(&mut BinDecoder::new(&[]), 0) else { return };
            let response = MessageResponseBuilder::new(&queries, None)
                .error_msg(&header.metadata, ResponseCode::FormErr);
            let _ = reply.clone().send_response(response).await;
            return;
        }
    };
    if request.metadata.message_type == MessageType::Response {
        return;
    }
    handler.handle_request::<_, TokioTime>(&request, reply).await;
}

/// A truncated answer to a query with EDNS keeps its OPT record (RFC 6891, 6.1.1: a responder
/// that got one MUST answer with one), so the asker still learns the server's UDP size and
/// extended code. hickory's encoder fills the datagram with records first, and drops OPT when
/// the records left it no room: then the answer is sent as the fast path sends every truncated
/// one, TC with the question and OPT and no records (the asker retries over TCP either way).
fn keep_opt(info: ResponseInfo, bytes: Vec<u8>, edns: Edns) -> (ResponseInfo, Vec<u8>) {
    let Ok(mut message) = Message::from_vec(&bytes) else { return (info, bytes) };
    if message.edns.is_some() {
        return (info, bytes);
    }
    message.answers.clear();
    message.authorities.clear();
    message.additionals.clear();
    message.set_edns(edns);
    message.metadata.truncation = true;
    match message.to_vec() {
        Ok(bytes) => {
            let counts =
                HeaderCounts { queries: message.queries.len() as u16, additionals: 1, ..Default::default() };
            (ResponseInfo::from(Header { metadata: message.metadata, counts }), bytes)
        }
        Err(_) => (info, bytes),
    }
}

/// Sends the handler's answer back over UDP, at most the asker's UDP size long.
#[derive(Clone)]
struct UdpReply {
    socket: Arc<UdpSocket>,
    dst: SocketAddr,
}

#[async_trait::async_trait]
impl ResponseHandler for UdpReply {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let (info, bytes) = encode(response)?;
        // Non-blocking: a full socket buffer loses this answer, like any lost datagram.
        let _ = self.socket.send_to(&bytes, self.dst);
        Ok(info)
    }
}

/// Encodes `response` for UDP: the size its OPT record advertises (the handler sets it from the
/// asker's, [`crate::udp_size`]), 512 bytes without EDNS; SERVFAIL if even that fails, as
/// hickory-server does.
pub fn encode<'a>(
    response: MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
) -> Result<(ResponseInfo, Vec<u8>), NetError> {
    let id = response.metadata().id;
    let edns = response.edns().cloned();
    let limit = edns.as_ref().map_or(PLAIN_LIMIT as u16, |edns| edns.max_payload());
    let mut bytes = Vec::with_capacity(512);
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_max_size(limit);
    if let Ok(info) = response.destructive_emit(&mut encoder) {
        if let (true, Some(edns)) = (info.truncation, edns) {
            return Ok(keep_opt(info, bytes, edns));
        }
        return Ok((info, bytes));
    }
    bytes.clear();
    let mut metadata = Metadata::new(id, MessageType::Response, OpCode::Query);
    metadata.response_code = ResponseCode::ServFail;
    let header = Header { metadata, counts: HeaderCounts::default() };
    let mut encoder = BinEncoder::new(&mut bytes);
    hickory_proto::serialize::binary::BinEncodable::emit(&header, &mut encoder)?;
    Ok((ResponseInfo::from(header), bytes))
}
