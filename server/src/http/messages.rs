//! `GET` and `POST /api/chat/messages/`.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use natter_shared::validate::{DEFAULT_HISTORY_LIMIT, validate_history_limit};
use natter_shared::{MessageId, SendMessage, ValidationError};

use super::{Body, json, query_pairs, read_body};
use crate::error::ServerError;
use crate::state::AppState;
use crate::store::{HistoryQuery, SendOutcome};

/// The messages the caller may see, ascending by id; `after`, `before`, `limit` select.
pub async fn list(
    req: Request<Incoming>,
    state: &Arc<AppState>,
) -> Result<Response<Body>, ServerError> {
    let user = state.auth.authenticate(req.headers(), None).await?;
    let q = history_query(&query_pairs(&req))?;
    let messages = state.store.visible_messages(user.id, q).await?;
    Ok(json(StatusCode::OK, &messages))
}

/// Stores a message: 201 with it, or 200 with the earlier one for a repeated client_id.
pub async fn post(
    req: Request<Incoming>,
    state: &Arc<AppState>,
) -> Result<Response<Body>, ServerError> {
    let user = state.auth.authenticate(req.headers(), None).await?;
    let body = read_body(req, state.config.request_timeout).await?;
    let message = SendMessage::from_json_body(&body, state.config.max_text_chars)
        .map_err(|e| ServerError::Invalid(e.error))?;
    state.admit(&user, &message)?;
    let started = std::time::Instant::now();
    match state.store.send(user, message).await? {
        SendOutcome::Stored(m) => {
            state.metrics.stored_rest.increment(1);
            state.metrics.ack_rest.record(started.elapsed());
            Ok(json(StatusCode::CREATED, &m))
        }
        SendOutcome::Duplicate(m) => Ok(json(StatusCode::OK, &m)),
        SendOutcome::UnknownReceiver(name) => Err(ServerError::UnknownReceiver(name)),
    }
}

/// Parses `after`, `before` and `limit`; unknown parameters are ignored.
pub fn history_query(pairs: &[(String, String)]) -> Result<HistoryQuery, ServerError> {
    let mut q = HistoryQuery {
        after: None,
        before: None,
        limit: DEFAULT_HISTORY_LIMIT,
    };
    for (k, v) in pairs {
        match k.as_str() {
            "after" => q.after = Some(parse_id("after", v)?),
            "before" => q.before = Some(parse_id("before", v)?),
            "limit" => {
                q.limit = v.parse().map_err(|_| {
                    ValidationError::field(format!("limit must be a whole number, not {v:?}"))
                })?;
                validate_history_limit(q.limit)?;
            }
            _ => {}
        }
    }
    Ok(q)
}

/// A message id from a query parameter: a non-negative integer.
pub fn parse_id(name: &str, v: &str) -> Result<MessageId, ServerError> {
    v.parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .map(MessageId)
        .ok_or_else(|| {
            ServerError::Invalid(ValidationError::field(format!(
                "{name} must be a message id (a whole number), not {v:?}"
            )))
        })
}
