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

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use std::cell::RefCell;

use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
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

/// Hashes a password with argon2id's default parameters into a PHC string, on a hashing
/// thread; `Busy` when the hashing queue is full.
pub async fn hash_password(password: &str) -> Result<String, ServerError> {
    let mut salt_bytes = [0u8; 16];
    getrandom::fill(&mut salt_bytes)
        .map_err(|e| ServerError::Internal(format!("no randomness: {e}")))?;
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|e| ServerError::Internal(format!("salt: {e}")))?;
    let password = password.to_owned();
    on_hasher(move || {
        let internal = |e: &dyn std::fmt::Display| ServerError::Internal(format!("hashing: {e}"));
        let params = Params::default();
        let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        argon2_into(&hasher, password.as_bytes(), &salt_bytes, &mut out)
            .map_err(|e| internal(&e))?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(|e| internal(&e))?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&out).map_err(|e| internal(&e))?),
        };
        Ok(phc.to_string())
    })
    .await?
}

/// Checks a password against a stored PHC string, on a hashing thread; `Busy` when the
/// hashing queue is full. A hash that does not parse, or is not argon2, verifies nothing.
pub async fn verify_password(password: &str, stored: &str) -> Result<bool, ServerError> {
    let (password, stored) = (password.to_owned(), stored.to_owned());
    on_hasher(move || verify_phc(password.as_bytes(), &stored).unwrap_or(false)).await
}

/// `None` when `stored` is not an argon2 PHC string we can check.
fn verify_phc(password: &[u8], stored: &str) -> Option<bool> {
    let phc = PasswordHash::new(stored).ok()?;
    let algorithm = Algorithm::try_from(phc.algorithm).ok()?;
    let version = phc
        .version
        .map_or(Ok(Version::default()), Version::try_from);
    let params = Params::try_from(&phc).ok()?;
    let expected = phc.hash?;
    let mut salt_buf = [0u8; Salt::MAX_LENGTH];
    let salt = phc.salt?.decode_b64(&mut salt_buf).ok()?;
    let hasher = Argon2::new(algorithm, version.ok()?, params);
    let mut out = vec![0u8; expected.len()];
    argon2_into(&hasher, password, salt, &mut out).ok()?;
    // `Output`'s equality is constant-time.
    Some(Output::new(&out).ok()? == expected)
}

thread_local! {
    /// argon2's working memory (19 MiB with the default parameters), kept by each hashing
    /// thread and reused, so a hash allocates nothing.
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Runs `hasher` into `out` in this thread's reused working memory. Reuse is safe: argon2's
/// first pass writes every block before anything reads it.
fn argon2_into(
    hasher: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    BLOCKS.with_borrow_mut(|blocks| {
        let need = hasher.params().block_count();
        if blocks.len() < need {
            blocks.resize(need, Block::default());
        }
        hasher.hash_password_into_with_memory(password, salt, out, &mut blocks[..need])
    })
}

/// Threads that run argon2: half the cores (at least one, at most four), so a flood of
/// hashes leaves the other half to reads and deliveries. Measured on 2 cores, 1,000
/// registrations 500 at once (three runs each): with two hashing threads another user's
/// read p99 went from 0.8–1.3 ms to 5.3–8.2 ms and it got 1,000–2,700 reads done in 1.5 s;
/// with one, 0.7–4.2 ms and 4,300–9,100 reads, while as many registrations got through (80–
/// 103 in 2 s either way: the two threads were competing for the same cores).
fn hasher_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).clamp(1, 4))
}

/// Hashes waiting or running beyond which new ones are refused with `busy`: at ~40 ms a
/// hash on one thread, the last in line waits about 2.6 s.
const HASH_QUEUE: usize = 64;

type HashJob = Box<dyn FnOnce() + Send>;

/// Runs `f` on one of the [`hasher_threads`] long-lived threads and waits for it without holding
/// a thread. Why not on tokio's blocking pool: argon2 needs 19 MiB of working memory, which
/// each hashing thread keeps (see [`BLOCKS`]); on whichever of the pool's many threads that
/// would be ~19 MiB per thread (an idle server once reached 650 MB after 40 registrations),
/// and a flood of hashes would occupy the pool that database reads need.
async fn on_hasher<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ServerError> {
    static ADMITTED: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(HASH_QUEUE);
    static POOL: OnceLock<Option<std::sync::mpsc::Sender<HashJob>>> = OnceLock::new();
    // The slot goes with the job, not with this future: a caller that hangs up must not
    // free its place while its hash still waits for a thread.
    let slot = ADMITTED.try_acquire().map_err(|_| ServerError::Busy)?;
    let pool = POOL.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<HashJob>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..hasher_threads() {
            let rx = Arc::clone(&rx);
            let started = std::thread::Builder::new()
                .name(format!("natter-hasher-{i}"))
                .spawn(move || {
                    loop {
                        // Held only while waiting for the next job, not while running it.
                        let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        let Ok(job) = job else { return };
                        // A panicking job must not take the thread (and every later
                        // hash) with it; its caller sees the reply channel close.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                });
            if started.is_err() {
                return None;
            }
        }
        Some(tx)
    });
    let failed = || ServerError::Internal("hashing thread failed".into());
    let Some(pool) = pool else {
        // No threads could be started: hash on the blocking pool rather than a worker.
        return tokio::task::spawn_blocking(move || {
            let _slot = slot;
            f()
        })
        .await
        .map_err(|_| failed());
    };
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let job: HashJob = Box::new(move || {
        let _slot = slot;
        let _ = done_tx.send(f());
    });
    pool.send(job).map_err(|_| failed())?;
    done_rx.await.map_err(|_| failed())
}

/// A valid hash of a password nobody has: login runs a verification against it when the
/// user does not exist, so the reply takes as long as for a wrong password. Computed once
/// (call it at start), with its own memory rather than a hashing thread's.
pub fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        use argon2::password_hash::PasswordHasher;
        SaltString::encode_b64(b"natter-decoy-salt")
            .ok()
            .and_then(|salt| {
                Argon2::default()
                    .hash_password(b"natter-decoy-password", &salt)
                    .ok()
                    .map(|h| h.to_string())
            })
            .unwrap_or_default()
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_verify_only_themselves() {
        let h = hash_password("correct horse").await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h).await.unwrap());
        assert!(!verify_password("wrong horse", &h).await.unwrap());
        assert!(
            !verify_password("correct horse", "not a hash")
                .await
                .unwrap()
        );
        assert!(!verify_password("x", decoy_hash()).await.unwrap());
    }

    /// Hashing in reused memory gives standard PHC strings: the argon2 crate's own verifier
    /// accepts ours, ours accepts its (so databases written before keep working), and a
    /// block left dirty by one hash does not change the next.
    #[tokio::test]
    async fn reused_memory_hashes_are_standard() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let ours = hash_password("first password").await.unwrap();
        let _ = hash_password("something else entirely").await.unwrap();
        let again = hash_password("first password").await.unwrap();
        for h in [&ours, &again] {
            let parsed = PasswordHash::new(h).unwrap();
            assert!(
                Argon2::default()
                    .verify_password(b"first password", &parsed)
                    .is_ok()
            );
        }
        let salt = SaltString::encode_b64(b"sixteen bytes!!!").unwrap();
        let theirs = Argon2::default()
            .hash_password(b"their password", &salt)
            .unwrap()
            .to_string();
        assert!(verify_password("their password", &theirs).await.unwrap());
        assert!(!verify_password("their passwore", &theirs).await.unwrap());
        // Other parameters (a cheaper hash from some other tool) verify too.
        let cheap = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"cheap", &salt)
        .unwrap()
        .to_string();
        assert!(verify_password("cheap", &cheap).await.unwrap());
        assert!(!verify_password("cheaq", &cheap).await.unwrap());
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
