//! Stored accounts: `credentials.toml`, one `[[account]]` per (server, username) with its
//! token and, when natter generated or was given it, its password (so a revoked token can be
//! renewed without asking). The file is mode 0600 and rewritten atomically under a lock.
//!
//! Lookups compare usernames case-insensitively, like the server.
//!
//! A file that cannot be read or parsed is an error of one line (path, line, column, what is
//! wrong; never toml's multi-line snippet), and [`save`] refuses to replace it: the accounts
//! in it are somebody's only copy of their passwords.

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
    let text = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(File::default()),
        Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
    };
    toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {}", path.display(), describe(&text, &e)))
}

/// A TOML error in one line: `invalid TOML at line L, column C: message` (1-based; the
/// column counts characters).
fn describe(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
    let Some(span) = e.span() else {
        return format!("invalid TOML: {message}");
    };
    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    format!("invalid TOML at line {line}, column {column}: {message}")
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

/// Adds or replaces the account for (server, username). A file that cannot be read is left
/// as it is, and the error is the one reading it gives.
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

    #[test]
    fn a_corrupt_file_is_one_line_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("credentials.toml");
        let corrupt = "[[account]]\nserver = \"http://h:1\"\nuser name = \"alice\"\n";
        std::fs::write(&p, corrupt).unwrap();
        let err = format!("{:#}", accounts(&p, "http://h:1").unwrap_err());
        let expected = format!(
            "cannot read {}: invalid TOML at line 3, column 6: ",
            p.display()
        );
        assert!(err.starts_with(&expected), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        let a = Account {
            server: "http://h:1".into(),
            username: "bob".into(),
            token: "t".into(),
            password: None,
        };
        assert_eq!(format!("{:#}", save(&p, &a).unwrap_err()), err);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), corrupt);
    }

    #[test]
    fn a_wrong_shape_says_where() {
        let text = "[[account]]\nserver = \"s\"\nusername = 3\ntoken = \"t\"\n";
        let e = toml::from_str::<File>(text).unwrap_err();
        let line = describe(text, &e);
        assert!(
            line.starts_with("invalid TOML at line 3, column 12: "),
            "{line}"
        );
    }
}
