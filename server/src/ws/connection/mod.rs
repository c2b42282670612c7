//! One WebSocket connection, from after the 101 to its close.
//!
//! Order of events, and why:
//! 1. Register with the hub first, so every message committed from now on is queued for us
//!    (or, should we fall behind, left in the store for us to read).
//! 2. With `?after=ID`, send the visible history after ID from the store, in pages. A
//!    message committed meanwhile is both in the store and in the queue; it is sent once
//!    because queued messages at or below the newest id sent (the *cursor*) are skipped.
//! 3. Send `ready`, then loop: frames from the client go to the store (several may be in
//!    flight; the writer keeps their order), and queued frames (messages, presence changes)
//!    go to the client in batches.
//! 4. On any exit (client close, error, silence, write timeout, shutdown), unregister.
//!
//! Falling behind cuts nobody. When our queue overflows, the hub stops queueing messages for
//! us and says so (`lagged`); we send what was queued, then catch up page by page after the
//! cursor while still reading the client's frames and pinging: from the hub's frames of the
//! latest messages (shared, already encoded), or from the store for anything older. The
//! page that reaches the newest message ends the lag atomically (see `Hub::catch_up`), so
//! nothing published meanwhile is lost, and brings the presence changes we missed. The
//! initial replay is the same catch-up.
//!
//! Every write has a deadline (`write_timeout`; see [`super::outgoing`]): a peer that accepts
//! no data for that long is closed with 1008 and its slot, queue and presence freed.
//!
//! A send is acknowledged by its echo, which reaches this connection through the hub (or the
//! store, while catching up) after the commit like any other message; only refusals and
//! duplicates are answered directly.
//!
//! The loop is generic over the socket (a WebSocket stream and sink that can [`Linger`]),
//! but the server gives it one kind: tungstenite's `WebSocketStream` over the upgraded
//! connection. The tests reach it through real sockets.
//!
//! Layout: this file (the [`Connection`], [`run`], and the session loop that `select!`s
//! over shutdown, lag, commits, the queue, the client's frames and pings), `catch_up`
//! (pages of what was missed, from the hub or the store; the lagging gauge), `admit` (the
//! client's frames admitted and sent to the store; refusals and duplicates answered),
//! `close` (why the loop ended, its close frame and metric label).

mod admit;
mod catch_up;
mod close;

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::FuturesOrdered;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use natter_shared::{ErrorCode, MessageId, ServerFrame};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tracing::Instrument;

use self::admit::{Pending, admit_frame, error_frame, outcome_frame};
use self::catch_up::{Feed, LagGauge, catch_up_step};
use self::close::{End, close_label, protocol_close_reason};
use super::linger::Linger;
use super::outgoing::Outgoing;
use crate::hub::{Outbound, Subscription};
use crate::state::AppState;
use crate::store::{SendOutcome, User};

/// Sends one connection may have waiting for their commit before we stop reading its frames.
const MAX_IN_FLIGHT: usize = 256;

/// Messages per page read from the store (replay and catch-up). Bounds what one connection
/// holds at once: 512 messages of at most 4,000 characters is 2 MiB at worst.
const STORE_PAGE: usize = 512;

/// Queued frames written before one flush.
const WRITE_BATCH: usize = 256;

/// What a connection knows about itself.
pub struct Connection {
    /// The token's user.
    pub user: User,
    /// The token's hash: a logout of it closes this connection.
    pub token: crate::auth::TokenHash,
    /// When the token was last checked (taken before the upgrade checked it).
    pub checked: crate::auth::Checked,
    /// `?after=`: replay from here.
    pub after: Option<MessageId>,
    /// Shared server state.
    pub state: Arc<AppState>,
    /// Held for the connection's life: its slot in all and for its user.
    pub _permit: crate::limits::WsPermit,
}

/// What the loop runs on: a WebSocket stream and sink that can [`Linger`] (the real
/// socket, or a test's).
pub trait Socket:
    Stream<Item = Result<WsMessage, WsError>> + Sink<WsMessage, Error = WsError> + Linger + Unpin + Send
{
}

impl<S> Socket for S where
    S: Stream<Item = Result<WsMessage, WsError>>
        + Sink<WsMessage, Error = WsError>
        + Linger
        + Unpin
        + Send
{
}

/// Runs the connection to its end.
pub async fn run<S: Socket>(ws: S, conn: Connection) {
    let span =
        tracing::info_span!("ws", user = %conn.user.username, conn_id = tracing::field::Empty);
    run_inner(ws, conn).instrument(span).await;
}

async fn run_inner<S: Socket>(ws: S, conn: Connection) {
    let state = Arc::clone(&conn.state);
    let user = conn.user.clone();
    // A replay begins as a catch-up: nothing is queued for it until it has caught up.
    let mut sub = if conn.after.is_some() {
        state.hub.register_catching_up(&user.username)
    } else {
        state.hub.register(&user.username)
    };
    tracing::Span::current().record("conn_id", sub.id.0);
    tracing::info!("connected");
    let (mut sink, mut stream) = ws.split();

    let end = session(&mut sink, &mut stream, &conn, &mut sub).await;
    state.hub.unregister(&user.username, sub.id);
    metrics::counter!(crate::metrics::CLOSED, "reason" => close_label(&end)).increment(1);
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

/// Steps 2 and 3: replay, `ready`, then the main loop.
async fn session<K, T>(
    sink: &mut K,
    stream: &mut T,
    conn: &Connection,
    sub: &mut Subscription,
) -> End
where
    K: Sink<WsMessage, Error = WsError> + Unpin,
    T: Stream<Item = Result<WsMessage, WsError>> + Unpin,
{
    let state = &conn.state;
    // A client resuming after an id that does not exist (its server's database was
    // replaced) gets live delivery from now on rather than nothing until the ids catch up.
    // The store says what exists: an id newer than the hub has seen may be committed and
    // not yet published, and the client may have read it over REST.
    let start = match conn.after {
        None => sub.live_after,
        Some(after) if after <= sub.live_after => after,
        Some(after) => match state.store.newest_id().await {
            Ok(newest) => after.min(newest),
            Err(e) => {
                tracing::error!(error = %crate::error::Chain(&e), "reading the newest message id failed");
                return End::Close(
                    CloseCode::Error,
                    "server error while sending history; reconnect",
                );
            }
        },
    };
    let mut out = Outgoing::new(sink, start, state.config.write_timeout, &state.metrics);
    let mut feed = if conn.after.is_some() {
        Feed::CatchingUp
    } else {
        Feed::Live
    };
    let mut ready_sent = false;
    let mut lag = LagGauge::new(&state.metrics);
    // Presence changes missed while catching up, sent once the messages are (and `ready`).
    let mut held_presence: Vec<Outbound> = Vec::new();
    let mut pending: FuturesOrdered<Pending> = FuturesOrdered::new();
    let mut ping = tokio::time::interval(state.config.ping_interval);
    ping.reset();
    let mut last_heard = Instant::now();
    let mut pause = state.config.pause_writes.clone();
    let mut checked = conn.checked;

    loop {
        // `ready` ends the replay: the protocol promises nothing but replayed messages
        // before it, so the client's frames and pings wait until it is sent.
        if feed == Feed::Live && !ready_sent {
            let ready = ServerFrame::Ready {
                username: conn.user.username.clone(),
                last_id: out.last_sent,
            };
            if let Err(end) = out.send(WsMessage::text(ready.encode())).await {
                return end.into();
            }
            ready_sent = true;
            last_heard = Instant::now();
        }
        if feed == Feed::Live && !held_presence.is_empty() {
            out.arm();
            for o in held_presence.drain(..) {
                if let Err(end) = out.feed_queued(o).await {
                    return end.into();
                }
            }
            if let Err(end) = out.flush().await {
                return end.into();
            }
        }
        let live = feed == Feed::Live;
        tokio::select! {
            biased;
            () = state.shutdown.cancelled() => {
                return End::Close(CloseCode::Away, "server shutting down");
            }
            () = sub.lagged.notified(), if live => {
                // The hub queues no more messages for us: send what it did queue (all
                // older than the first miss), then read the rest from the store.
                tracing::debug!(cursor = out.cursor.0, "outbound queue full; catching up from the store");
                lag.start();
                out.arm();
                while let Ok(o) = sub.rx.try_recv() {
                    if let Err(end) = out.feed_queued(o).await {
                        return end.into();
                    }
                }
                feed = Feed::CatchingUp;
            }
            Some((client_id, outcome, took)) = pending.next() => {
                if let Ok(SendOutcome::Stored(_)) = &outcome {
                    state.metrics.stored_ws.increment(1);
                    state.metrics.ack_ws.record(took);
                }
                if let Some(frame) = outcome_frame(client_id, outcome)
                    && let Err(end) = out.send(frame).await
                {
                    return end.into();
                }
            }
            queued = sub.rx.recv(), if live => {
                let Some(first) = queued else { return End::Error };
                if let Some(p) = &mut pause {
                    // Test hook: a stalled connection task.
                    let _ = p.wait_for(|paused| !*paused).await;
                }
                out.arm();
                let mut batch = vec![first];
                while batch.len() < WRITE_BATCH {
                    match sub.rx.try_recv() {
                        Ok(o) => batch.push(o),
                        Err(_) => break,
                    }
                }
                for o in batch {
                    if let Err(end) = out.feed_queued(o).await {
                        return end.into();
                    }
                }
                if let Err(end) = out.flush().await {
                    return end.into();
                }
            }
            frame = stream.next(), if ready_sent && pending.len() < MAX_IN_FLIGHT => {
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
                        let reply = match admit_frame(conn, text.as_bytes()).await {
                            Ok(p) => {
                                pending.push_back(p);
                                None
                            }
                            Err(frame) => Some(frame),
                        };
                        if let Some(frame) = reply
                            && let Err(end) = out.send(frame).await
                        {
                            return end.into();
                        }
                    }
                    Some(Ok(WsMessage::Binary(_))) => {
                        let e = error_frame(ErrorCode::BinaryFrame, "binary frames are not supported; send JSON text frames", None);
                        if let Err(end) = out.send(e).await {
                            return end.into();
                        }
                    }
                    // tungstenite queues the pong; flush so it leaves now.
                    Some(Ok(WsMessage::Ping(_))) => {
                        out.arm();
                        if let Err(end) = out.flush().await {
                            return end.into();
                        }
                    }
                    Some(Ok(WsMessage::Pong(_) | WsMessage::Frame(_))) => {}
                }
            }
            _ = ping.tick(), if ready_sent => {
                if last_heard.elapsed() >= state.config.idle_timeout {
                    return End::Close(CloseCode::Away, "no frames or pongs for too long");
                }
                if !state.auth.still_valid(&conn.token, &mut checked).await {
                    return End::Close(CloseCode::Policy, "logged out: this token was revoked");
                }
                if let Err(end) = out.send(WsMessage::Ping(Default::default())).await {
                    return end.into();
                }
            }
            () = std::future::ready(()), if !live => {
                match catch_up_step(&mut out, conn, sub).await {
                    Ok((next, presence)) => {
                        feed = next;
                        held_presence = presence;
                        if feed == Feed::Live {
                            lag.end();
                        }
                    }
                    Err(end) => return end,
                }
            }
        }
    }
}
