//! The client's frames in, and the direct answers out: a chat message decoded, admitted
//! (rate, size) and queued for the writer, its commit awaited as a [`Pending`] future, and
//! the error frames for refusals and duplicates (a stored message is answered by its echo
//! through the hub, not here).

use std::pin::Pin;
use std::time::Duration;

use natter_shared::{ClientFrame, ErrorBody, ErrorCode, ServerFrame};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::Connection;
use crate::error::ServerError;
use crate::store::{SendOutcome, StoreError};

/// A send waiting for its commit: its client_id, the outcome, and how long it took.
pub(super) type Pending = Pin<
    Box<dyn Future<Output = (Option<String>, Result<SendOutcome, StoreError>, Duration)> + Send>,
>;

/// Decodes and checks a text frame; on success it is queued for storage and the returned
/// future resolves once it is committed. On failure, the error frame to send.
pub(super) async fn admit_frame(conn: &Connection, bytes: &[u8]) -> Result<Pending, WsMessage> {
    let state = &conn.state;
    let ClientFrame::ChatMessage(message) = ClientFrame::decode(bytes, state.config.max_text_chars)
        .map_err(|e| error_frame(e.error.code, &e.error.message, e.client_id))?;
    let client_id = message.client_id.as_ref().map(|c| c.to_string());
    if let Err(e) = state.admit(&conn.user, &message) {
        crate::metrics::count_refusal(&e);
        return Err(server_error_frame(&e, client_id));
    }
    let started = Instant::now();
    match state.store.send_pipelined(conn.user.clone(), message).await {
        Ok(rx) => Ok(Box::pin(async move {
            let outcome = rx.await.unwrap_or(Err(StoreError::Closed));
            (client_id, outcome, started.elapsed())
        })),
        Err(e) => Err(server_error_frame(&ServerError::Store(e), client_id)),
    }
}

/// The frame to send this connection once its send is committed, if any: a stored message
/// is echoed through the hub, so only duplicates and refusals are answered here.
pub(super) fn outcome_frame(
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

/// The error frame for `e`; a server fault's detail is logged here.
fn server_error_frame(e: &ServerError, client_id: Option<String>) -> WsMessage {
    e.log_fault();
    let body = e.body();
    error_frame(body.code, &body.message, client_id)
}

pub(super) fn error_frame(code: ErrorCode, message: &str, client_id: Option<String>) -> WsMessage {
    tracing::debug!(%code, message, "frame refused");
    WsMessage::text(
        ServerFrame::Error {
            error: ErrorBody::new(code, message),
            client_id,
        }
        .encode(),
    )
}
