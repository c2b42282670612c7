//! One WebSocket connection, from after the 101 to its close.
//!
//! Order of events, and why:
//! 1. Register with the hub first, so every message committed from now on is queued for us.
//! 2. With `?after=ID`, replay the visible history after ID from the store, in pages. A
//!    message committed during the replay is both in the store and in the queue; it is sent
//!    once because queued messages with an id at or below the last replayed one are skipped.
//! 3. Send `ready`, then loop: frames from the client go to the store (several may be in
//!    flight; the writer keeps their order), and queued frames (messages, presence changes)
//!    go to the client in batches.
//! 4. On any exit (client close, error, silence, overflow, shutdown), unregister.
//!
//! A send is acknowledged by its echo, which reaches this connection through the hub after
//! the commit like any other message; only refusals and duplicates are answered directly.
//! The loop is generic over the socket so tests can drive it with channels.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::FuturesOrdered;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use natter_shared::{ClientFrame, ErrorBody, ErrorCode, MessageId, ServerFrame};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tracing::Instrument;

use super::linger::Linger;
use crate::error::ServerError;
use crate::hub::Outbound;
use crate::state::AppState;
use crate::store::{HistoryQuery, SendOutcome, StoreError, User};

/// Sends one connection may have waiting for their commit before we stop reading its frames.
const MAX_IN_FLIGHT: usize = 256;

/// Messages per replay page.
const REPLAY_PAGE: usize = 1000;

/// Queued frames written before one flush.
const WRITE_BATCH: usize = 256;

/// What a connection knows about itself.
pub struct Connection {
    /// The token's user.
    pub user: User,
    /// The token's hash: a logout of it closes this connection.
    pub token: crate::auth::TokenHash,
    /// `?after=`: replay from here.
    pub after: Option<MessageId>,
    /// Shared server state.
    pub state: Arc<AppState>,
    /// Held for the connection's life: one of `max_connections`.
    pub _permit: OwnedSemaphorePermit,
}

type Pending =
    Pin<Box<dyn Future<Output = (Option<String>, Result<SendOutcome, StoreError>)> + Send>>;

/// Why the loop ended.
enum End {
    ClientClosed,
    Error,
    Close(CloseCode, &'static str),
}

/// Runs the connection to its end.
pub async fn run<S>(ws: S, conn: Connection)
where
    S: Stream<Item = Result<WsMessage, WsError>>
        + Sink<WsMessage, Error = WsError>
        + Linger
        + Unpin
        + Send,
{
    let span =
        tracing::info_span!("ws", user = %conn.user.username, conn_id = tracing::field::Empty);
    run_inner(ws, conn).instrument(span).await;
}

async fn run_inner<S>(ws: S, conn: Connection)
where
    S: Stream<Item = Result<WsMessage, WsError>>
        + Sink<WsMessage, Error = WsError>
        + Linger
        + Unpin
        + Send,
{
    let state = Arc::clone(&conn.state);
    let user = conn.user.clone();
    let mut sub = state.hub.register(&user.username);
    tracing::Span::current().record("conn_id", sub.id.0);
    tracing::info!("connected");
    let (mut sink, mut stream) = ws.split();

    let end = match replay(&mut sink, &conn).await {
        Ok(last_replayed) => session(&mut sink, &mut stream, &conn, &mut sub, last_replayed).await,
        Err(Failure::Socket) => End::Error,
        Err(Failure::Store(e)) => {
            tracing::error!(error = %e, "replay failed");
            End::Close(CloseCode::Error, "server error during replay; reconnect")
        }
    };
    state.hub.unregister(&user.username, sub.id);
    match end {
        End::Close(code, reason) => {
            let frame = CloseFrame {
                code,
                reason: reason.into(),
            };
            // Best effort: the peer may already be gone.
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                sink.send(WsMessage::Close(Some(frame))).await?;
                sink.close().await
            })
            .await;
            // So the close frame is read, not lost to a reset (see `linger`). Not after
            // the client's own close: it sent nothing after it, and a client that waits
            // for us to close TCP would hold the task for the whole timeout.
            if let Ok(mut ws) = sink.reunite(stream) {
                ws.linger().await;
            }
            tracing::info!(code = u16::from(code), reason, "closed by server");
        }
        End::ClientClosed => {
            let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
            tracing::info!("closed by client");
        }
        End::Error => tracing::info!("connection lost"),
    }
}

enum Failure {
    Socket,
    Store(StoreError),
}

/// Steps 2 and 3: the replay and the `ready` frame; returns the newest id replayed.
async fn replay<K>(sink: &mut K, conn: &Connection) -> Result<Option<MessageId>, Failure>
where
    K: Sink<WsMessage, Error = WsError> + Unpin,
{
    let mut last = None;
    if let Some(after) = conn.after {
        let mut cursor = after;
        loop {
            let q = HistoryQuery {
                after: Some(cursor),
                before: None,
                limit: REPLAY_PAGE,
            };
            let page = conn
                .state
                .store
                .visible_messages(conn.user.id, q)
                .await
                .map_err(Failure::Store)?;
            for m in &page {
                sink.feed(WsMessage::text(ServerFrame::encode_chat_message(m)))
                    .await
                    .map_err(|_| Failure::Socket)?;
            }
            let Some(newest) = page.last() else { break };
            cursor = newest.id;
            last = Some(cursor);
            if page.len() < REPLAY_PAGE {
                break;
            }
        }
    }
    let ready = ServerFrame::Ready {
        username: conn.user.username.clone(),
        last_id: last,
    };
    sink.feed(WsMessage::text(ready.encode()))
        .await
        .map_err(|_| Failure::Socket)?;
    sink.flush().await.map_err(|_| Failure::Socket)?;
    Ok(last)
}

/// Step 3: the main loop.
async fn session<K, T>(
    sink: &mut K,
    stream: &mut T,
    conn: &Connection,
    sub: &mut crate::hub::Subscription,
    last_replayed: Option<MessageId>,
) -> End
where
    K: Sink<WsMessage, Error = WsError> + Unpin,
    T: Stream<Item = Result<WsMessage, WsError>> + Unpin,
{
    let state = &conn.state;
    let mut pending: FuturesOrdered<Pending> = FuturesOrdered::new();
    let mut ping = tokio::time::interval(state.config.ping_interval);
    ping.reset();
    let mut last_heard = Instant::now();
    let skip =
        |out: &Outbound| matches!((out.id, last_replayed), (Some(id), Some(last)) if id <= last);

    loop {
        tokio::select! {
            biased;
            () = state.shutdown.cancelled() => {
                return End::Close(CloseCode::Away, "server shutting down");
            }
            () = sub.overflowed.cancelled() => {
                return End::Close(CloseCode::Again, "too slow: outbound queue full; reconnect with ?after=<last id>");
            }
            Some((client_id, outcome)) = pending.next() => {
                if let Some(frame) = outcome_frame(client_id, outcome) {
                    if sink.send(frame).await.is_err() {
                        return End::Error;
                    }
                }
            }
            queued = sub.rx.recv() => {
                let Some(out) = queued else { return End::Error };
                let mut batch = vec![out];
                while batch.len() < WRITE_BATCH {
                    match sub.rx.try_recv() {
                        Ok(o) => batch.push(o),
                        Err(_) => break,
                    }
                }
                for out in batch.into_iter().filter(|o| !skip(o)) {
                    if sink.feed(out.frame).await.is_err() {
                        return End::Error;
                    }
                }
                if sink.flush().await.is_err() {
                    return End::Error;
                }
            }
            frame = stream.next(), if pending.len() < MAX_IN_FLIGHT => {
                last_heard = Instant::now();
                match frame {
                    None | Some(Ok(WsMessage::Close(_))) => return End::ClientClosed,
                    Some(Err(WsError::Capacity(_))) => {
                        return End::Close(CloseCode::Size, "frame larger than 1 MiB");
                    }
                    Some(Err(WsError::Utf8(_))) => {
                        return End::Close(CloseCode::Invalid, "text frame is not valid UTF-8");
                    }
                    // A TCP close without a close frame is a lost connection, not a frame
                    // to answer.
                    Some(Err(WsError::Protocol(e)))
                        if !matches!(e, ProtocolError::ResetWithoutClosingHandshake) =>
                    {
                        return End::Close(CloseCode::Protocol, protocol_close_reason(&e));
                    }
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "read failed");
                        return End::Error;
                    }
                    Some(Ok(WsMessage::Text(text))) => {
                        match admit_frame(conn, text.as_bytes()).await {
                            Ok(p) => pending.push_back(p),
                            Err(frame) => {
                                if sink.send(frame).await.is_err() {
                                    return End::Error;
                                }
                            }
                        }
                    }
                    Some(Ok(WsMessage::Binary(_))) => {
                        let e = error_frame(ErrorCode::BinaryFrame, "binary frames are not supported; send JSON text frames", None);
                        if sink.send(e).await.is_err() {
                            return End::Error;
                        }
                    }
                    // tungstenite queues the pong; flush so it leaves now.
                    Some(Ok(WsMessage::Ping(_))) => {
                        if sink.flush().await.is_err() {
                            return End::Error;
                        }
                    }
                    Some(Ok(WsMessage::Pong(_) | WsMessage::Frame(_))) => {}
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() >= state.config.idle_timeout {
                    return End::Close(CloseCode::Away, "no frames or pongs for too long");
                }
                if state.auth.is_revoked(&conn.token) {
                    return End::Close(CloseCode::Policy, "logged out: this token was revoked");
                }
                if sink.send(WsMessage::Ping(Default::default())).await.is_err() {
                    return End::Error;
                }
            }
        }
    }
}

/// Decodes and checks a text frame; on success it is queued for storage and the returned
/// future resolves once it is committed. On failure, the error frame to send.
async fn admit_frame(conn: &Connection, bytes: &[u8]) -> Result<Pending, WsMessage> {
    let state = &conn.state;
    let ClientFrame::ChatMessage(message) = ClientFrame::decode(bytes, state.config.max_text_chars)
        .map_err(|e| error_frame(e.error.code, &e.error.message, e.client_id))?;
    let client_id = message.client_id.as_ref().map(|c| c.to_string());
    if let Err(e) = state.admit(&conn.user, &message) {
        return Err(server_error_frame(&e, client_id));
    }
    match state.store.send_pipelined(conn.user.clone(), message).await {
        Ok(rx) => Ok(Box::pin(async move {
            let outcome = rx.await.unwrap_or(Err(StoreError::Closed));
            (client_id, outcome)
        })),
        Err(e) => Err(server_error_frame(&ServerError::Store(e), client_id)),
    }
}

/// The frame to send this connection once its send is committed, if any: a stored message
/// is echoed through the hub, so only duplicates and refusals are answered here.
fn outcome_frame(
    client_id: Option<String>,
    outcome: Result<SendOutcome, StoreError>,
) -> Option<WsMessage> {
    match outcome {
        Ok(SendOutcome::Stored(_)) => None,
        Ok(SendOutcome::Duplicate(m)) => {
            Some(WsMessage::text(ServerFrame::encode_chat_message(&m)))
        }
        Ok(SendOutcome::UnknownReceiver(name)) => Some(server_error_frame(
            &ServerError::UnknownReceiver(name),
            client_id,
        )),
        Err(StoreError::Closed) => Some(server_error_frame(&ServerError::ShuttingDown, client_id)),
        Err(e) => Some(server_error_frame(&ServerError::Store(e), client_id)),
    }
}

fn server_error_frame(e: &ServerError, client_id: Option<String>) -> WsMessage {
    let body = e.body();
    error_frame(body.code, &body.message, client_id)
}

fn error_frame(code: ErrorCode, message: &str, client_id: Option<String>) -> WsMessage {
    tracing::debug!(%code, message, "frame refused");
    WsMessage::text(
        ServerFrame::Error {
            error: ErrorBody::new(code, message),
            client_id,
        }
        .encode(),
    )
}

/// The reason in the 1002 close frame for a frame that broke RFC 6455. A close reason must
/// fit in 123 bytes, and `End::Close` carries a `&'static str`, so each is a fixed sentence.
fn protocol_close_reason(e: &ProtocolError) -> &'static str {
    match e {
        ProtocolError::UnmaskedFrameFromClient => "protocol error: client frames must be masked",
        ProtocolError::NonZeroReservedBits => {
            "protocol error: reserved bits set, but no extension was negotiated"
        }
        ProtocolError::UnknownDataFrameType(_)
        | ProtocolError::UnknownControlFrameType(_)
        | ProtocolError::InvalidOpcode(_) => "protocol error: unknown opcode",
        ProtocolError::FragmentedControlFrame => "protocol error: fragmented control frame",
        ProtocolError::ControlFrameTooBig => "protocol error: control frame payload over 125 bytes",
        ProtocolError::UnexpectedContinueFrame => {
            "protocol error: continuation frame with no message to continue"
        }
        ProtocolError::ExpectedFragment(_) => {
            "protocol error: new message before the last fragment of the previous one"
        }
        ProtocolError::InvalidCloseSequence => "protocol error: invalid close frame payload",
        _ => "protocol error",
    }
}
