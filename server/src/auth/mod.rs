//! Passwords, tokens, and "who is this request".
//!
//! Passwords are hashed with argon2id (memory-hard), which takes tens of milliseconds, on a
//! few dedicated threads that keep its memory from piling up. Callers wait for them
//! asynchronously, behind a bounded queue: a flood of registrations or logins gets `busy`
//! instead of tying up tokio's blocking pool, which the database reads share (before, 1,000
//! registrations at once held ~500 blocking threads and other users' reads took seconds).
//! Tokens are 256 random bits shown to the client once; the
//! database keeps only their SHA-256, so a copy of the file grants nothing. A token never
//! changes owner, so a verified one is cached in memory until it is revoked (logout).
//! Revoked tokens are also remembered, so that sockets opened with one notice and close.
//!
//! With several instances a logout on one must reach the others' caches: the bus carries
//! each revocation ([`Authenticator::forget`]). While the bus is down a revocation could be
//! missed, so the cache is not trusted then (every request reads the database), and each
//! time the bus is lost or regained the *epoch* moves on, which makes every open socket
//! recheck its token in the database at its next ping.
//!
//! Layout: this file (tokens, and the [`Authenticator`]: its cache of verified and revoked
//! tokens and "who is this request"), `password` (argon2id hashing and verifying, the decoy
//! hash), `hasher` (the threads that run argon2 and their queue), `tests`.

mod hasher;
mod password;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use hyper::HeaderMap;
use sha2::{Digest, Sha256};

pub use self::password::{decoy_hash, hash_password, verify_password};
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

/// Resolves bearer tokens to users.
pub struct Authenticator {
    store: Store,
    // A std mutex: held for a map lookup or insert only.
    tokens: Mutex<Tokens>,
}

/// What a socket remembers of its last token check: see [`Authenticator::still_valid`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked(u64);

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
    /// Whether `valid` may answer without the database: always for one instance; for
    /// several, only while the bus that carries revocations is connected.
    trusted: bool,
    /// Moves on whenever a revocation may have been missed (see the module docs).
    epoch: u64,
}

impl Authenticator {
    /// An authenticator over `store`. `clustered`: other instances share the database, so
    /// the cache is trusted only while the bus is connected ([`bus_connected`](Self::bus_connected)).
    pub fn new(store: Store, clustered: bool) -> Self {
        Authenticator {
            store,
            tokens: Mutex::new(Tokens {
                trusted: !clustered,
                ..Tokens::default()
            }),
        }
    }

    /// A token revoked on another instance: forgotten here too.
    pub fn forget(&self, hash: TokenHash) {
        self.lock().forget(hash);
    }

    /// The bus is down: revocations elsewhere may not reach us, so cached tokens are not
    /// trusted until it is back, and open sockets recheck theirs.
    pub fn bus_lost(&self) {
        let mut tokens = self.lock();
        if tokens.trusted {
            tokens.trusted = false;
            tokens.epoch += 1;
        }
    }

    /// The bus is (again) connected: revocations reach us from now on. What was cached
    /// before may have been revoked meanwhile, so the cache starts over and open sockets
    /// recheck their tokens.
    pub fn bus_connected(&self) {
        let mut tokens = self.lock();
        tokens.valid.clear();
        tokens.trusted = true;
        tokens.epoch += 1;
    }

    /// The check a new socket starts from.
    pub fn checked_now(&self) -> Checked {
        Checked(self.lock().epoch)
    }

    /// Whether a socket's token still stands, at its ping: revoked here or by the bus →
    /// no; otherwise yes, unless a revocation may have been missed since `checked` (or the
    /// cache is not trusted now), in which case the database answers. A database that
    /// cannot answer is no reason to cut the socket: the next ping asks again.
    pub async fn still_valid(&self, hash: &TokenHash, checked: &mut Checked) -> bool {
        let epoch = {
            let tokens = self.lock();
            if tokens.revoked.contains(hash) {
                return false;
            }
            if tokens.trusted && tokens.epoch == checked.0 {
                return true;
            }
            tokens.epoch
        };
        match self.store.user_by_token(*hash).await {
            Ok(Some(_)) => {
                *checked = Checked(epoch);
                true
            }
            Ok(None) => {
                self.lock().forget(*hash);
                false
            }
            Err(_) => true,
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
        {
            let tokens = self.lock();
            if tokens.trusted
                && let Some(user) = tokens.valid.get(&hash)
            {
                return Ok((user.clone(), hash));
            }
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
        self.lock().forget(hash);
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

impl Tokens {
    fn forget(&mut self, hash: TokenHash) {
        self.valid.remove(&hash);
        if self.revoked.len() >= TOKEN_CACHE_MAX {
            self.revoked.clear();
        }
        self.revoked.insert(hash);
    }
}
