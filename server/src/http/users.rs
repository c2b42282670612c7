//! `GET /api/users/`.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use natter_shared::protocol::UserStatus;

use super::{Body, json};
use crate::error::ServerError;
use crate::state::AppState;

/// Every user with whether they have an open WebSocket, sorted by name.
pub async fn list(
    req: Request<Incoming>,
    state: &Arc<AppState>,
) -> Result<Response<Body>, ServerError> {
    state.auth.authenticate(req.headers(), None).await?;
    let users: Vec<UserStatus> = state
        .store
        .usernames()
        .await?
        .into_iter()
        .map(|username| UserStatus {
            online: state.hub.is_online(&username),
            username,
        })
        .collect();
    Ok(json(StatusCode::OK, &users))
}
