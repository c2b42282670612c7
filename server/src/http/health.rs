//! Probes for supervisors and load balancers: `GET /livez` (the process answers: always 200)
//! and `GET /readyz` (it can serve writes now). `/healthz`, older than both, stays in
//! `http/mod.rs` as it was.
//!
//! Not ready: while shutting down, and while the store cannot write (its [`Condition`]).
//! Both answers also say where the bus stands (`"bus"`: `none`, `redis`, or `polling` while
//! Redis is out of reach): polling is still ready — messages keep flowing, within a second.

use hyper::{Method, Response, StatusCode};
use natter_shared::ErrorCode;
use serde_json::json;

use super::{Body, json};
use crate::error::ServerError;
use crate::state::AppState;
use crate::store::Condition;

/// `GET /livez`: 200 `{"status":"ok"}` as long as the process answers at all. A full or
/// deleted database is no reason to restart it: a new process would not fix either.
pub fn livez(method: &Method) -> Result<Response<Body>, ServerError> {
    match *method {
        Method::GET | Method::HEAD => Ok(json(StatusCode::OK, &json!({"status": "ok"}))),
        _ => Err(ServerError::MethodNotAllowed("GET")),
    }
}

/// `GET /readyz`: 200 `{"status":"ready","bus":…}`, or 503
/// `{"status":"not_ready","reason":CODE,"bus":…}` where CODE is the wire error code a write
/// would get now.
pub fn readyz(method: &Method, state: &AppState) -> Result<Response<Body>, ServerError> {
    if !matches!(*method, Method::GET | Method::HEAD) {
        return Err(ServerError::MethodNotAllowed("GET"));
    }
    let reason = if state.shutdown.is_cancelled() {
        Some(ErrorCode::ShuttingDown)
    } else {
        match state.store.condition() {
            Condition::Writable => None,
            Condition::Full => Some(ErrorCode::StorageFull),
            Condition::Gone | Condition::Failing => Some(ErrorCode::StorageUnavailable),
        }
    };
    let bus = state.bus.state().as_str();
    Ok(match reason {
        None => json(StatusCode::OK, &json!({"status": "ready", "bus": bus})),
        Some(code) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "not_ready", "reason": code, "bus": bus}),
        ),
    })
}
