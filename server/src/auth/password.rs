//! Passwords: argon2id hashes as PHC strings, made and checked on the hashing threads
//! (`hasher`) in each thread's reused working memory, and the decoy hash that makes a login
//! for a missing user take as long as a wrong password.

use std::cell::RefCell;
use std::sync::OnceLock;

use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use super::hasher::on_hasher;
use crate::error::ServerError;

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
