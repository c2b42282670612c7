//! The WebSocket half of the protocol: opening `/ws/chat/?after=ID` with the bearer token,
//! encoding `chat_message` frames and decoding server frames. The reconnect policy lives in
//! `net/session/` (the chat screen) and in `cli/tail.rs`; this file only knows one connection.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use natter_shared::{ClientFrame, MessageId, ServerFrame};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::net::ServerUrl;
use crate::net::tls::{self, Tls};
use crate::outbox::Outgoing;

/// How long the opening handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// An open chat socket.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why a connection could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The token was refused (401): log in again.
    #[error("the server refused the token")]
    Unauthorized,
    /// The server (or something in front of it) answered the upgrade with another status.
    #[error("the server refused the socket (HTTP {0})")]
    Refused(u16),
    /// No connection, or the handshake failed.
    #[error("{0}")]
    Network(String),
    /// The server's TLS certificate was refused (what is wrong, and what to do).
    #[error("{0}")]
    Untrusted(String),
}

/// What reading the socket produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A protocol frame.
    Frame(ServerFrame),
    /// A text frame that is not a known frame (logged, skipped).
    Unknown(String),
    /// The connection ended (or went silent); the reason, for the status line.
    Closed(String),
}

/// Opens the chat socket, replaying messages after `after` when given; `wss://` trusts
/// what `tls` trusts.
pub async fn connect(
    server: &ServerUrl,
    tls: &Tls,
    token: &str,
    after: Option<MessageId>,
) -> Result<Socket, ConnectError> {
    let mut url = format!("{}/ws/chat/", server.ws_base());
    if let Some(after) = after {
        url = format!("{url}?after={after}");
    }
    let mut request = url
        .into_client_request()
        .map_err(|e| ConnectError::Network(e.to_string()))?;
    let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| ConnectError::Unauthorized)?;
    request.headers_mut().insert("authorization", bearer);
    let connector = server
        .is_tls()
        .then(|| Connector::Rustls(tls.client_config()));
    // Nagle off, as `connect_async` does: frames are small and each one matters.
    let connecting =
        tokio_tungstenite::connect_async_tls_with_config(request, None, true, connector);
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Err(_) => Err(ConnectError::Network("connection timed out".into())),
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(tungstenite::Error::Http(resp))) if resp.status().as_u16() == 401 => {
            Err(ConnectError::Unauthorized)
        }
        Ok(Err(tungstenite::Error::Http(resp))) => {
            Err(ConnectError::Refused(resp.status().as_u16()))
        }
        Ok(Err(e)) => Err(match tls::refusal(&e) {
            Some(why) => ConnectError::Untrusted(why),
            None => ConnectError::Network(e.to_string()),
        }),
    }
}

/// The frame that sends `outgoing`.
pub fn frame_for(outgoing: &Outgoing) -> String {
    ClientFrame::ChatMessage(outgoing.to_send()).encode()
}

/// Sends `outgoing` on the socket.
pub async fn send(socket: &mut Socket, outgoing: &Outgoing) -> Result<(), String> {
    socket
        .send(WsMessage::text(frame_for(outgoing)))
        .await
        .map_err(|e| e.to_string())
}

/// Reads until the next frame worth reporting (pings are answered by tungstenite).
pub async fn next(socket: &mut Socket) -> Incoming {
    loop {
        if let Some(incoming) = reported(socket.next().await) {
            return incoming;
        }
    }
}

/// What a read from the socket means for its reader; `None` for frames nobody needs to see
/// (pings, pongs, binary).
fn reported(got: Option<Result<WsMessage, tungstenite::Error>>) -> Option<Incoming> {
    Some(match got {
        None => Incoming::Closed("connection closed".into()),
        Some(Err(e)) => Incoming::Closed(e.to_string()),
        Some(Ok(WsMessage::Text(text))) => match ServerFrame::decode(&text) {
            Ok(frame) => Incoming::Frame(frame),
            Err(_) => Incoming::Unknown(text.to_string()),
        },
        Some(Ok(WsMessage::Close(frame))) => Incoming::Closed(match frame {
            Some(f) if f.code == tungstenite::protocol::frame::coding::CloseCode::Away => {
                "the server is shutting down".to_owned()
            }
            Some(f) if !f.reason.is_empty() => format!("closed by server: {}", f.reason),
            Some(f) => format!("closed by server ({})", u16::from(f.code)),
            None => "closed by server".to_owned(),
        }),
        Some(Ok(_)) => return None,
    })
}

/// How often [`Heartbeat`] looks at a socket; one quiet this long is pinged.
const CHECK_EVERY: Duration = Duration::from_millis(500);
/// A ping unanswered this long (no pong, no frame at all) and the socket counts as dead:
/// with [`CHECK_EVERY`] that is at most 2 s from the server's last frame.
const UNANSWERED: Duration = Duration::from_millis(1000);

/// Reads a live socket and pings it when it is quiet. A server that stops answering without
/// closing anything (a hung host, a frozen tunnel, a stopped process) sends no FIN, and the
/// kernel would take minutes to give up; an unanswered ping finds out within 2 s.
///
/// Only a ping sent while we were reading can time out, and frames already waiting are
/// read before the clock is looked at, so a caller that was busy elsewhere for a while
/// (a slow screen) never mistakes its own pause for the server's silence.
pub struct Heartbeat {
    ticks: tokio::time::Interval,
    last_heard: tokio::time::Instant,
    /// When the ping still unanswered was sent.
    waiting_since: Option<tokio::time::Instant>,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self::new()
    }
}

impl Heartbeat {
    /// Starts counting from now.
    pub fn new() -> Self {
        let mut ticks = tokio::time::interval(CHECK_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Heartbeat {
            ticks,
            last_heard: tokio::time::Instant::now(),
            waiting_since: None,
        }
    }

    /// Like [`next`], but also `Closed` when a ping goes unanswered. Safe to cancel (in a
    /// `select!`): nothing read is lost, and a ping cut short is still sent.
    pub async fn next(&mut self, socket: &mut Socket) -> Incoming {
        loop {
            tokio::select! {
                biased;
                got = socket.next() => {
                    self.last_heard = tokio::time::Instant::now();
                    self.waiting_since = None;
                    if let Some(incoming) = reported(got) {
                        return incoming;
                    }
                }
                // Times are the ticks' scheduled instants, not the moment we woke: measured
                // from a wake-up, the ping's second tick came a hair under UNANSWERED and the
                // give-up slipped to the third (2.0-2.5 s after the last frame, not 1.5-2).
                tick = self.ticks.tick() => {
                    match self.waiting_since {
                        Some(sent) if tick.saturating_duration_since(sent) >= UNANSWERED => {
                            return Incoming::Closed("the server stopped answering".into());
                        }
                        Some(_) => {}
                        None if tick.saturating_duration_since(self.last_heard) >= CHECK_EVERY => {
                            if let Err(e) = socket.send(WsMessage::Ping(Default::default())).await {
                                return Incoming::Closed(e.to_string());
                            }
                            self.waiting_since = Some(tick);
                        }
                        None => {}
                    }
                }
            }
        }
    }
}
