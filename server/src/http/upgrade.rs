//! Turns `GET /ws/chat/` into a WebSocket.
//!
//! Everything that can refuse the connection (headers, token, `?after=`, the connection
//! limit, shutdown) is checked before the 101, so a refusal is an ordinary JSON error
//! reply. The upgrade itself can only complete after hyper has sent the 101, so the
//! connection runs in a task spawned here [hyper `examples/upgrades.rs`].

use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    CONNECTION, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION,
    UPGRADE,
};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::messages::parse_id;
use super::{Body, query_pairs};
use crate::error::ServerError;
use crate::state::AppState;
use crate::ws::connection::{self, Connection};

/// Largest message tungstenite will assemble. Frames between the protocol's 64 KiB and this
/// get a `too_large` error frame and the connection stays open; beyond it the connection is
/// closed with 1009, since the bytes would have to be read to be skipped.
const MAX_WS_MESSAGE_BYTES: usize = 1024 * 1024;

/// tungstenite's read buffer. Its default (128 KiB, zero-filled on first read) would be
/// most of an idle connection's memory; chat frames are small.
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// Frames gather in tungstenite's write buffer until this many bytes, or a flush (the
/// connection flushes after every batch, so nothing waits). With 0 every frame was its own
/// `write` syscall, the largest cost of fan-out; 16 KiB writes ~50 chat frames at once while
/// bounding what a busy connection keeps allocated.
const WRITE_BUFFER_BYTES: usize = 16 * 1024;

/// Whether `key` is a `Sec-WebSocket-Key` RFC 6455 section 4.1 allows: base64 of 16 bytes,
/// which is 22 base64 characters and `==`. The 101 hashes the key, so without this check
/// a client sending none or garbage was upgraded anyway, and a broken client went unnoticed.
fn is_valid_key(key: &[u8]) -> bool {
    let is_base64 = |b: &u8| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/';
    key.len() == 24 && key.ends_with(b"==") && key[..22].iter().all(is_base64)
}

/// Validates the upgrade request and answers 101, spawning the connection.
pub async fn handle(
    req: Request<Incoming>,
    state: &Arc<AppState>,
) -> Result<Response<Body>, ServerError> {
    let headers = req.headers();
    let has_token = |name, want: &str| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(want)))
    };
    if !has_token(UPGRADE, "websocket") || !has_token(CONNECTION, "upgrade") {
        return Err(ServerError::UpgradeRequired);
    }
    if headers
        .get(SEC_WEBSOCKET_VERSION)
        .and_then(|v| v.to_str().ok())
        != Some("13")
    {
        return Err(ServerError::UpgradeRequired);
    }
    let key = headers
        .get(SEC_WEBSOCKET_KEY)
        .map(HeaderValue::as_bytes)
        .filter(|k| is_valid_key(k))
        .ok_or(ServerError::BadRequest(
            "Sec-WebSocket-Key must be the base64 of 16 bytes (24 characters ending in \"==\")",
        ))?
        .to_vec();

    let pairs = query_pairs(&req);
    let query_token = pairs
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.as_str());
    // Before the check, so a revocation missed after it is caught at the first ping.
    let checked = state.auth.checked_now();
    let (user, token) = state
        .auth
        .authenticate_token(req.headers(), query_token)
        .await?;
    let after = pairs
        .iter()
        .find(|(k, _)| k == "after")
        .map(|(_, v)| parse_id("after", v))
        .transpose()?;
    if state.shutdown.is_cancelled() {
        return Err(ServerError::ShuttingDown);
    }
    let permit = state.limits.try_websocket(&user.username)?;

    let task_state = Arc::clone(state);
    state.tasks.spawn(async move {
        // By value: a request kept alive for the connection's life would pin hyper's 8 KiB
        // read buffer, which its header values are slices of.
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade failed");
                return;
            }
        };
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_BYTES)
            .write_buffer_size(WRITE_BUFFER_BYTES)
            .max_message_size(Some(MAX_WS_MESSAGE_BYTES))
            .max_frame_size(Some(MAX_WS_MESSAGE_BYTES));
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        connection::run(
            ws,
            Connection {
                user,
                token,
                checked,
                after,
                state: task_state,
                _permit: permit,
            },
        )
        .await;
    });

    let mut r = Response::new(Full::default());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    let accept = HeaderValue::from_str(&derive_accept_key(&key))
        .map_err(|e| ServerError::Internal(format!("accept header: {e}")))?;
    h.insert(SEC_WEBSOCKET_ACCEPT, accept);
    Ok(r)
}
