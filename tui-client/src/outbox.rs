//! Messages typed but not yet confirmed by the server, kept on disk so that neither a
//! dropped connection nor quitting the client loses them.
//!
//! One JSON-lines file per (server, user), in the order typed. A message is written here
//! before any attempt to send it and removed only when the server has confirmed it (the
//! socket echo or the POST reply carrying its `client_id`). Retries reuse the original
//! `client_id`, so the server stores each message exactly once however often it is sent.

use std::path::{Path, PathBuf};

use anyhow::Context;
use natter_shared::{ClientId, Username};
use serde::{Deserialize, Serialize};

use crate::paths;

/// A message on its way out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outgoing {
    /// The idempotency key, chosen when the message was typed.
    pub client_id: ClientId,
    /// `None` for everyone.
    pub receiver: Option<Username>,
    /// The text.
    pub text: String,
}

/// The outbox file of one identity on one server.
#[derive(Debug, Clone)]
pub struct Outbox {
    path: PathBuf,
}

impl Outbox {
    /// The outbox of `user` in `dir` (see [`paths::Paths::outbox_dir`]).
    pub fn new(dir: &Path, user: &Username) -> Self {
        Outbox {
            path: dir.join(format!("{}.jsonl", user.key())),
        }
    }

    /// Where it lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> anyhow::Result<Vec<Outgoing>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.path.display())),
        };
        // A line that does not parse (a hand edit) is skipped rather than blocking the rest.
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }

    fn write(&self, entries: &[Outgoing]) -> anyhow::Result<()> {
        let mut text = String::new();
        for e in entries {
            text.push_str(&serde_json::to_string(e).context("encoding outbox entry")?);
            text.push('\n');
        }
        paths::write_atomic(&self.path, text.as_bytes())
    }

    /// The waiting messages, oldest first.
    pub fn entries(&self) -> anyhow::Result<Vec<Outgoing>> {
        paths::with_lock(&self.path, || self.read())
    }

    /// Appends `entry` (durably) unless its client_id is already there.
    pub fn push(&self, entry: &Outgoing) -> anyhow::Result<()> {
        paths::with_lock(&self.path, || {
            let mut all = self.read()?;
            if !all.iter().any(|e| e.client_id == entry.client_id) {
                all.push(entry.clone());
                self.write(&all)?;
            }
            Ok(())
        })
    }

    /// Removes the entry with `client_id`, if present.
    pub fn remove(&self, client_id: &ClientId) -> anyhow::Result<()> {
        paths::with_lock(&self.path, || {
            let mut all = self.read()?;
            let before = all.len();
            all.retain(|e| &e.client_id != client_id);
            if all.len() != before {
                self.write(&all)?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(id: &str) -> Outgoing {
        Outgoing {
            client_id: ClientId::parse(id).unwrap(),
            receiver: None,
            text: format!("text {id}"),
        }
    }

    #[test]
    fn keeps_order_survives_reopen_and_ignores_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let alice = Username::parse("alice").unwrap();
        let ob = Outbox::new(dir.path(), &alice);
        for id in ["a", "b", "c", "b"] {
            ob.push(&out(id)).unwrap();
        }
        ob.remove(&ClientId::parse("b").unwrap()).unwrap();
        let reopened = Outbox::new(dir.path(), &Username::parse("ALICE").unwrap());
        let ids: Vec<_> = reopened
            .entries()
            .unwrap()
            .into_iter()
            .map(|e| e.client_id.to_string())
            .collect();
        assert_eq!(ids, ["a", "c"]);
    }
}
