//! `POST /api/auth/register`, `POST /api/auth/login` and `POST /api/auth/logout`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use natter_shared::protocol::{AuthResponse, Credentials, decode_json};
use natter_shared::{Username, validate};

use super::{Body, json, read_body};
use crate::auth::{decoy_hash, hash_password, new_token, verify_password};
use crate::error::ServerError;
use crate::peer::client_ip;
use crate::state::AppState;
use crate::store::RegisterOutcome;

/// Creates an account and returns its first token: 201, or 409 if the name is taken.
/// Throttled per client address (valid requests only, taken names included), since each
/// costs a slow hash.
pub async fn register(
    req: Request<Incoming>,
    state: &Arc<AppState>,
    peer: SocketAddr,
) -> Result<Response<Body>, ServerError> {
    let client = client_ip(peer, req.headers(), &state.config.trusted_proxies);
    let creds: Credentials = decode_json(&read_body(req, state.config.request_timeout).await?)?;
    let username = Username::parse(&creds.username)?;
    validate::validate_password(&creds.password)?;
    if !state.register_limiter.allow(client) {
        return Err(ServerError::RegistrationThrottled);
    }
    if state.store.user_by_name(username.as_str()).await?.is_some() {
        // Checked again by the writer; this early answer just skips the slow hash.
        return Err(ServerError::UsernameTaken(username.to_string()));
    }
    let hash = hash_password(&creds.password).await?;
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
///
/// Failures are throttled per (name, client address), so a stranger's guesses use up only
/// the stranger's attempts, with looser caps per name and per address (see [`Attempt`]).
pub async fn login(
    req: Request<Incoming>,
    state: &Arc<AppState>,
    peer: SocketAddr,
) -> Result<Response<Body>, ServerError> {
    let client = client_ip(peer, req.headers(), &state.config.trusted_proxies);
    let creds: Credentials = decode_json(&read_body(req, state.config.request_timeout).await?)?;
    if creds.password.len() > validate::MAX_PASSWORD_BYTES {
        return Err(ServerError::InvalidCredentials);
    }
    // A name that breaks the rules cannot exist: no throttle and no hash for it (the rules
    // are public, so the quick answer tells nothing).
    let Ok(name) = Username::parse(&creds.username) else {
        return Err(ServerError::InvalidCredentials);
    };
    let attempt = Attempt::take(name.key(), client, state)?;
    let record = match state.store.user_by_name(name.as_str()).await {
        Ok(record) => record,
        Err(e) => {
            attempt.give_back(state);
            return Err(e.into());
        }
    };
    // Without a user, verify against a decoy so the reply takes the same time either way.
    let stored = record
        .as_ref()
        .map_or_else(|| decoy_hash().to_owned(), |r| r.password_hash.clone());
    let ok = match verify_password(&creds.password, &stored).await {
        Ok(ok) => ok,
        Err(e) => {
            // Busy is not a failed guess.
            attempt.give_back(state);
            return Err(e);
        }
    };
    let user = match record {
        Some(r) if ok => r.user,
        _ => return Err(ServerError::InvalidCredentials),
    };
    attempt.give_back(state);
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
    state.bus.token_revoked(hash);
    tracing::info!(user = %user.username, "logged out");
    let mut r = Response::new(Body::default());
    *r.status_mut() = StatusCode::NO_CONTENT;
    Ok(r)
}

/// The throttle tokens one login attempt holds: per (name, address), per name from all
/// addresses (ten times looser), and per address for all names (ten times looser, so one
/// address cannot keep the hashing threads busy by trying a fresh name each time).
struct Attempt {
    name: String,
    client: IpAddr,
}

impl Attempt {
    /// Takes a token from each bucket, or none and 429 if any is empty. Names are throttled
    /// whether they exist or not, so a 429 does not tell.
    fn take(name: String, client: IpAddr, state: &AppState) -> Result<Attempt, ServerError> {
        let pair = (name.clone(), client);
        if !state.login_limiter.allow(pair.clone()) {
            return Err(ServerError::LoginThrottled);
        }
        if !state.login_name_limiter.allow(name.clone()) {
            state.login_limiter.refund(&pair);
            return Err(ServerError::LoginThrottled);
        }
        if !state.login_ip_limiter.allow(client) {
            state.login_limiter.refund(&pair);
            state.login_name_limiter.refund(&name);
            return Err(ServerError::LoginThrottled);
        }
        Ok(Attempt { name, client })
    }

    /// Gives the tokens back: the attempt succeeded, or failed for a reason that was not a
    /// wrong guess (busy, a store fault). Only failed guesses drain the buckets.
    fn give_back(self, state: &AppState) {
        state
            .login_limiter
            .refund(&(self.name.clone(), self.client));
        state.login_name_limiter.refund(&self.name);
        state.login_ip_limiter.refund(&self.client);
    }
}
