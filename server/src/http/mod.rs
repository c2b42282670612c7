//! HTTP routing and the JSON helpers every handler uses.
//!
//! `handle` is the hyper service: it routes (method, path) to a handler and turns any
//! [`ServerError`] into `{"error":{"code","message"}}` with the matching status. Paths match
//! with or without their trailing slash. Adding an endpoint: a handler in `http/<area>.rs`
//! and one line in `route`. Requests hyper refuses before `handle` runs get the same error
//! shape from [`canned`], a wrapper around the socket.

mod auth;
pub mod canned;
mod health;
mod messages;
mod upgrade;
mod users;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use natter_shared::validate::MAX_FRAME_BYTES;
use natter_shared::{ErrorCode, ErrorResponse, ValidationError};
use serde::Serialize;

use crate::error::ServerError;
use crate::state::AppState;

/// Response body type for every reply.
pub type Body = Full<Bytes>;

/// The hyper service function.
pub async fn handle(
    req: Request<Incoming>,
    state: Arc<AppState>,
    peer: SocketAddr,
) -> Result<Response<Body>, Infallible> {
    let method = req.method().clone();
    // The path only: query strings can carry tokens and are never logged.
    let path = req.uri().path().to_owned();
    let response = match route(req, &state, peer).await {
        Ok(r) => r,
        Err(e) => {
            if e.status().is_client_error() {
                tracing::debug!(%method, %path, code = %e.code(), error = %e, "request refused");
            }
            crate::metrics::count_refusal(&e);
            error_response(&e)
        }
    };
    let status = response.status().as_u16();
    tracing::debug!(%method, %path, status, "request");
    metrics::counter!(
        crate::metrics::HTTP_REQUESTS,
        "route" => route_label(&path),
        "status" => status.to_string()
    )
    .increment(1);
    Ok(response)
}

/// The route a path belongs to, as a metric label: known routes by name, anything else as
/// one label (paths are chosen by strangers, labels must stay few).
fn route_label(path: &str) -> &'static str {
    match path.strip_suffix('/').unwrap_or(path) {
        "/healthz" => "/healthz",
        "/livez" => "/livez",
        "/readyz" => "/readyz",
        "/api/auth/register" => "/api/auth/register",
        "/api/auth/login" => "/api/auth/login",
        "/api/auth/logout" => "/api/auth/logout",
        "/api/chat/messages" => "/api/chat/messages",
        "/api/users" => "/api/users",
        "/ws/chat" => "/ws/chat",
        _ => "other",
    }
}

async fn route(
    req: Request<Incoming>,
    state: &Arc<AppState>,
    peer: SocketAddr,
) -> Result<Response<Body>, ServerError> {
    let path = req.uri().path();
    let path = path.strip_suffix('/').unwrap_or(path);
    let method = req.method();
    match path {
        "/healthz" => match *method {
            Method::GET | Method::HEAD => {
                Ok(json(StatusCode::OK, &serde_json::json!({"status": "ok"})))
            }
            _ => Err(ServerError::MethodNotAllowed("GET")),
        },
        "/livez" => health::livez(method),
        "/readyz" => health::readyz(method, state),
        "/api/auth/register" => match *method {
            Method::POST => auth::register(req, state, peer).await,
            _ => Err(ServerError::MethodNotAllowed("POST")),
        },
        "/api/auth/login" => match *method {
            Method::POST => auth::login(req, state, peer).await,
            _ => Err(ServerError::MethodNotAllowed("POST")),
        },
        "/api/auth/logout" => match *method {
            Method::POST => auth::logout(req, state).await,
            _ => Err(ServerError::MethodNotAllowed("POST")),
        },
        "/api/chat/messages" => match *method {
            Method::GET => messages::list(req, state).await,
            Method::POST => messages::post(req, state).await,
            _ => Err(ServerError::MethodNotAllowed("GET, POST")),
        },
        "/api/users" => match *method {
            Method::GET => users::list(req, state).await,
            _ => Err(ServerError::MethodNotAllowed("GET")),
        },
        "/ws/chat" => match *method {
            Method::GET => upgrade::handle(req, state).await,
            _ => Err(ServerError::MethodNotAllowed("GET")),
        },
        _ => Err(ServerError::NotFound(req.uri().path().to_owned())),
    }
}

/// A JSON reply.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    // Our reply types are plain data; serializing them cannot fail.
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// The error reply for `e`; a server fault's detail is logged here.
pub fn error_response(e: &ServerError) -> Response<Body> {
    e.log_fault();
    let mut r = json(e.status(), &ErrorResponse { error: e.body() });
    match e {
        ServerError::MethodNotAllowed(allow) => {
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
        }
        // RFC 6455 4.4: name the version we speak.
        ServerError::UpgradeRequired => {
            r.headers_mut().insert(
                hyper::header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
        }
        _ => {}
    }
    r
}

/// The reply for a connection past the HTTP connection cap (see `limits`): health checks
/// still say ok, so an orchestrator does not restart a server that is only full; anything
/// else is refused at once, unread.
pub fn over_cap(req: &Request<Incoming>) -> Response<Body> {
    let path = req.uri().path();
    let mut r = match path.strip_suffix('/').unwrap_or(path) {
        "/healthz" | "/livez" => json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
        _ => error_response(&ServerError::TooManyConnections),
    };
    r.headers_mut()
        .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// Reads a request body of at most [`MAX_FRAME_BYTES`], which must arrive within
/// `timeout` (a client that declares a body and trickles it must not hold a connection).
pub async fn read_body(req: Request<Incoming>, timeout: Duration) -> Result<Bytes, ServerError> {
    let too_large = || {
        ServerError::Invalid(ValidationError::new(
            ErrorCode::TooLarge,
            format!("body is larger than {MAX_FRAME_BYTES} bytes"),
        ))
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_FRAME_BYTES as u64) {
        return Err(too_large());
    }
    let collect = Limited::new(req.into_body(), MAX_FRAME_BYTES).collect();
    let collected = tokio::time::timeout(timeout, collect)
        .await
        .map_err(|_| ServerError::RequestTimeout)?;
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(_) => Err(ServerError::Invalid(ValidationError::new(
            ErrorCode::InvalidJson,
            "could not read the request body",
        ))),
    }
}

/// The query string's `name=value` pairs, percent-decoded.
pub fn query_pairs(req: &Request<Incoming>) -> Vec<(String, String)> {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}
