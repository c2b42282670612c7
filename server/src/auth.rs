//! Passwords, tokens, and "who is this request".
//!
//! Passwords are hashed with argon2id (memory-hard) off the async threads, since one hash
//! takes tens of milliseconds, on two dedicated threads that keep its memory from piling up. Tokens are 256 random bits shown to the client once; the
//! database keeps only their SHA-256, so a copy of the file grants nothing. A token never
//! changes owner, so a verified one is cached in memory until it is revoked (logout).
//! Revoked tokens are also remembered, so that sockets opened with one notice and close.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use hyper::HeaderMap;
use sha2::{Digest, Sha256};

use crate::error::ServerError;
use crate::store::{Store, User};

/// Cached tokens beyond which the cache starts over (bounds memory, not correctness).
const TOKEN_CACHE_MAX: usize = 100_000;

/// Longest string accepted as a token before hashing it.
const MAX_TOKEN_CHARS: usize = 256;

/// A fresh bearer token and the hash to store.
pub fn new_token() -> Result<(String, [u8; 32]), ServerError> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| ServerError::Internal(format!("no randomness: {e}")))?;
    let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let hash = hash_token(&token);
    Ok((token, hash))
}

/// SHA-256 of a token: what the database stores and looks up.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Hashes a password (slow: call on the blocking pool).
pub fn hash_password(password: &str) -> Result<String, ServerError> {
    let mut salt_bytes = [0u8; 16];
    getrandom::fill(&mut salt_bytes)
        .map_err(|e| ServerError::Internal(format!("no randomness: {e}")))?;
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|e| ServerError::Internal(format!("salt: {e}")))?;
    let password = password.to_owned();
    on_hasher(move || {
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ServerError::Internal(format!("hashing: {e}")))
    })
    .unwrap_or_else(|| Err(ServerError::Internal("hashing thread failed".into())))
}

/// Checks a password against a stored hash (slow: call on the blocking pool). A hash that
/// does not parse verifies nothing.
pub fn verify_password(password: &str, stored: &str) -> bool {
    let (password, stored) = (password.to_owned(), stored.to_owned());
    on_hasher(move || {
        PasswordHash::new(&stored).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
    })
    .unwrap_or(false)
}

/// Threads that run argon2.
const HASHER_THREADS: usize = 2;

type HashJob = Box<dyn FnOnce() + Send>;

/// Runs `f` on one of [`HASHER_THREADS`] long-lived threads and waits for it; `None` if it
/// panicked. Why not on the calling blocking-pool thread: each argon2 run allocates 19 MiB,
/// and glibc keeps such blocks in the arena of the thread that freed them, so hashing on
/// whichever of the pool's many threads left ~19 MiB resident per thread (an idle server
/// reached 650 MB after 40 registrations). Two fixed threads reuse two blocks.
fn on_hasher<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    static POOL: OnceLock<Option<std::sync::mpsc::Sender<HashJob>>> = OnceLock::new();
    let pool = POOL.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<HashJob>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..HASHER_THREADS {
            let rx = Arc::clone(&rx);
            let started = std::thread::Builder::new()
                .name(format!("natter-hasher-{i}"))
                .spawn(move || {
                    loop {
                        // Held only while waiting for the next job, not while running it.
                        let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        let Ok(job) = job else { return };
                        // A panicking job must not take the thread (and every later
                        // hash) with it; its caller sees `None`.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                });
            if started.is_err() {
                return None;
            }
        }
        Some(tx)
    });
    let Some(pool) = pool else {
        // No threads could be started: hash here, as before.
        return Some(f());
    };
    let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
    let job: HashJob = Box::new(move || {
        let _ = done_tx.send(f());
    });
    pool.send(job).ok()?;
    done_rx.recv().ok()
}

/// A valid hash of a password nobody has: login runs a verification against it when the
/// user does not exist, so the reply takes as long as for a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("natter-decoy-password").unwrap_or_default())
}

/// Resolves bearer tokens to users.
pub struct Authenticator {
    store: Store,
    // A std mutex: held for a map lookup or insert only.
    tokens: Mutex<Tokens>,
}

/// A token's SHA-256: what the database and the caches hold.
pub type TokenHash = [u8; 32];

#[derive(Default)]
struct Tokens {
    /// Verified tokens.
    valid: HashMap<TokenHash, User>,
    /// Revoked since the server started. Past `TOKEN_CACHE_MAX` it starts over: the
    /// database refuses those tokens anyway; only a socket opened before its token was
    /// revoked would then stay open until it closes.
    revoked: HashSet<TokenHash>,
}

impl Authenticator {
    /// An authenticator over `store`.
    pub fn new(store: Store) -> Self {
        Authenticator {
            store,
            tokens: Mutex::new(Tokens::default()),
        }
    }

    /// The user of the request's `Authorization: Bearer` token, or (when `query_token` is
    /// given, for WebSocket clients that cannot set headers) of `?token=`.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        query_token: Option<&str>,
    ) -> Result<User, ServerError> {
        Ok(self.authenticate_token(headers, query_token).await?.0)
    }

    /// Like [`authenticate`](Self::authenticate), also returning the token's hash.
    pub async fn authenticate_token(
        &self,
        headers: &HeaderMap,
        query_token: Option<&str>,
    ) -> Result<(User, TokenHash), ServerError> {
        let token = match headers.get(hyper::header::AUTHORIZATION) {
            Some(value) => {
                let value = value
                    .to_str()
                    .map_err(|_| ServerError::Unauthorized("authorization header is not text"))?;
                let (scheme, token) = value.split_once(' ').ok_or(ServerError::Unauthorized(
                    "authorization header must be \"Bearer TOKEN\"",
                ))?;
                if !scheme.eq_ignore_ascii_case("bearer") {
                    return Err(ServerError::Unauthorized(
                        "authorization header must be \"Bearer TOKEN\"",
                    ));
                }
                token.trim()
            }
            None => query_token.ok_or(ServerError::Unauthorized(
                "missing token; send \"Authorization: Bearer TOKEN\" (log in at /api/auth/login)",
            ))?,
        };
        if token.is_empty() || token.len() > MAX_TOKEN_CHARS {
            return Err(ServerError::Unauthorized("invalid token"));
        }
        let hash = hash_token(token);
        if let Some(user) = self.lock().valid.get(&hash) {
            return Ok((user.clone(), hash));
        }
        let user = self
            .store
            .user_by_token(hash)
            .await?
            .ok_or(ServerError::Unauthorized("invalid token; log in again"))?;
        let mut tokens = self.lock();
        // Revoked while we read it: answer this request, but do not cache it.
        if !tokens.revoked.contains(&hash) {
            if tokens.valid.len() >= TOKEN_CACHE_MAX {
                tokens.valid.clear();
            }
            tokens.valid.insert(hash, user.clone());
        }
        Ok((user, hash))
    }

    /// Revokes a token: deleted from the database, then forgotten here.
    pub async fn revoke(&self, hash: TokenHash) -> Result<(), ServerError> {
        self.store.remove_token(hash).await?;
        let mut tokens = self.lock();
        tokens.valid.remove(&hash);
        if tokens.revoked.len() >= TOKEN_CACHE_MAX {
            tokens.revoked.clear();
        }
        tokens.revoked.insert(hash);
        Ok(())
    }

    /// Whether `hash` was revoked while this server ran (sockets check it on every ping).
    pub fn is_revoked(&self, hash: &TokenHash) -> bool {
        self.lock().revoked.contains(hash)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tokens> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_themselves() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, ha) = new_token().unwrap();
        let (b, _) = new_token().unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(hash_token(&a), ha);
    }
}
