//! `POST /api/auth/register`, `POST /api/auth/login` and `POST /api/auth/logout`.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use natter_shared::protocol::{AuthResponse, Credentials, decode_json};
use natter_shared::{Username, validate};

use super::{Body, json, read_body};
use crate::auth::{decoy_hash, hash_password, new_token, verify_password};
use crate::error::ServerError;
use crate::state::AppState;
use crate::store::RegisterOutcome;

/// Creates an account and returns its first token: 201, or 409 if the name is taken.
pub async fn register(
    req: Request<Incoming>,
    state: &Arc<AppState>,
) -> Result<Response<Body>, ServerError> {
    let creds: Credentials = decode_json(&read_body(req).await?)?;
    let username = Username::parse(&creds.username)?;
    validate::validate_password(&creds.password)?;
    if state.store.user_by_name(username.as_str()).await?.is_some() {
        // Checked again by the writer; this early answer just skips the slow hash.
        return Err(ServerError::UsernameTaken(username.to_string()));
    }
    let hash = blocking(move || hash_password(&creds.password)).await?;
    let (token, token_hash) = new_token()?;
    match state
        .store
        .register(username.clone(), hash, token_hash)
        .await?
    {
        RegisterOutcome::Created(user) => {
            tracing::info!(user = %user.username, "registered");
            Ok(json(
                StatusCode::CREATED,
                &AuthResponse {
                    username: user.username,
                    token,
                },
            ))
        }
        RegisterOutcome::Taken => Err(ServerError::UsernameTaken(username.to_string())),
    }
}

/// Checks a password and returns a new token: 200, or 401.
pub async fn login(
    req: Request<Incoming>,
    state: &Arc<AppState>,
) -> Result<Response<Body>, ServerError> {
    let creds: Credentials = decode_json(&read_body(req).await?)?;
    if creds.password.len() > validate::MAX_PASSWORD_BYTES {
        return Err(ServerError::InvalidCredentials);
    }
    let name = Username::parse(&creds.username).ok();
    // Throttled per name, known or not, so the answer does not tell which names exist.
    let throttle_key = name.as_ref().map(Username::key);
    if let Some(key) = &throttle_key
        && !state.login_limiter.allow(key.clone())
    {
        return Err(ServerError::LoginThrottled);
    }
    let record = match &name {
        Some(name) => state.store.user_by_name(name.as_str()).await?,
        None => None,
    };
    // Without a user, verify against a decoy so the reply takes the same time either way.
    let stored = record
        .as_ref()
        .map_or_else(|| decoy_hash().to_owned(), |r| r.password_hash.clone());
    let password = creds.password;
    let ok = blocking(move || Ok(verify_password(&password, &stored))).await?;
    let user = match record {
        Some(r) if ok => r.user,
        _ => return Err(ServerError::InvalidCredentials),
    };
    if let Some(key) = &throttle_key {
        state.login_limiter.refund(key);
    }
    let (token, token_hash) = new_token()?;
    state.store.add_token(user.id, token_hash).await?;
    tracing::info!(user = %user.username, "logged in");
    Ok(json(
        StatusCode::OK,
        &AuthResponse {
            username: user.username,
            token,
        },
    ))
}

/// Revokes the token the request carries: 204. Other tokens of the user stay valid; a
/// socket opened with this one is closed at its next ping.
pub async fn logout(
    req: Request<Incoming>,
    state: &Arc<AppState>,
) -> Result<Response<Body>, ServerError> {
    let (user, hash) = state.auth.authenticate_token(req.headers(), None).await?;
    state.auth.revoke(hash).await?;
    tracing::info!(user = %user.username, "logged out");
    let mut r = Response::new(Body::default());
    *r.status_mut() = StatusCode::NO_CONTENT;
    Ok(r)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ServerError> + Send + 'static,
) -> Result<T, ServerError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ServerError::Internal(format!("hashing task failed: {e}")))?
}
