//! Stored accounts: `credentials.toml`, one `[[account]]` per (server, username) with its
//! token and, when natter generated or was given it, its password (so a revoked token can be
//! renewed without asking). The file is mode 0600 and rewritten atomically under a lock.
//!
//! Lookups compare usernames case-insensitively, like the server.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::paths;

/// One stored account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The server URL as given with `--server` (normalized, no trailing slash).
    pub server: String,
    /// The account's name as the server spells it.
    pub username: String,
    /// The bearer token.
    pub token: String,
    /// The password, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    #[serde(default)]
    account: Vec<Account>,
}

fn read(path: &Path) -> anyhow::Result<File> {
    match std::fs::read_to_string(path) {
        Ok(s) => toml::from_str(&s).with_context(|| format!("reading {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(File::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Every account stored for `server`.
pub fn accounts(path: &Path, server: &str) -> anyhow::Result<Vec<Account>> {
    Ok(read(path)?
        .account
        .into_iter()
        .filter(|a| a.server == server)
        .collect())
}

/// The account stored for `server` and `username`, if any.
pub fn find(path: &Path, server: &str, username: &str) -> anyhow::Result<Option<Account>> {
    Ok(accounts(path, server)?
        .into_iter()
        .find(|a| a.username.eq_ignore_ascii_case(username)))
}

/// Adds or replaces the account for (server, username).
pub fn save(path: &Path, account: &Account) -> anyhow::Result<()> {
    paths::with_lock(path, || {
        let mut file = read(path)?;
        file.account.retain(|a| {
            !(a.server == account.server && a.username.eq_ignore_ascii_case(&account.username))
        });
        file.account.push(account.clone());
        let text = toml::to_string(&file).context("encoding credentials")?;
        paths::write_atomic(path, text.as_bytes())
    })
}

/// `len` random characters of `A–Z a–z 0–9`, from the OS's generator.
pub fn random_string(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = vec![0u8; len * 2];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness is not something to carry on without: fall back to the clock
        // and pid mixed, which is at least unique per run.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
            ^ u128::from(std::process::id());
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (seed >> ((i % 16) * 8)) as u8;
        }
    }
    bytes
        .chunks(2)
        .map(|c| {
            let v = usize::from(c[0]) << 8 | usize::from(c[1]);
            char::from(ALPHABET[v % ALPHABET.len()])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_replaces_and_finds_case_insensitively() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("natter/credentials.toml");
        let a = Account {
            server: "http://h:1".into(),
            username: "Alice".into(),
            token: "t1".into(),
            password: Some("pw123456".into()),
        };
        save(&p, &a).unwrap();
        save(
            &p,
            &Account {
                token: "t2".into(),
                ..a.clone()
            },
        )
        .unwrap();
        save(
            &p,
            &Account {
                server: "http://other".into(),
                ..a.clone()
            },
        )
        .unwrap();
        let found = find(&p, "http://h:1", "alice").unwrap().unwrap();
        assert_eq!(found.token, "t2");
        assert_eq!(accounts(&p, "http://h:1").unwrap().len(), 1);
        assert!(find(&p, "http://h:1", "bob").unwrap().is_none());
    }
}
