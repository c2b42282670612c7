//! Messages typed but not yet confirmed by the server, kept on disk so that neither a
//! dropped connection nor quitting the client loses them.
//!
//! One JSON-lines file per (server, user), in the order typed. A message is written here
//! before any attempt to send it and removed only when the server has confirmed it (the
//! socket echo or the POST reply carrying its `client_id`) or refused it for good. Retries
//! reuse the original `client_id`, so the server stores each message exactly once however
//! often it is sent.
//!
//! Who writes it: the chat screen (its runner appends what is typed, its network task sends
//! and removes) and `natter send` (`cli/send.rs`). Every change is a read-modify-write under
//! the file's `flock` ([`paths::with_lock`]), so concurrent natter processes never lose an
//! entry; an entry leaves the file only once the server has answered for its `client_id`.
//!
//! Who sends what, when several run at once:
//! - `natter send` holds the outbox's *sending lock* ([`Outbox::try_lock_sending`], a second
//!   `flock`ed file, `<user>.jsonl.sending`) for its whole run, and sends the file's entries
//!   one at a time, oldest first, re-reading it before each. So two `send`s of one account
//!   take turns (the second waits, bounded) instead of both posting the same entry, and
//!   each learns the fate of exactly the messages it took.
//! - The chat screen loads the file when an identity starts and sends its own in-memory
//!   queue. After that it takes the entries others added (a `send` that gave up, or was
//!   killed, while the screen was open) when the file has changed ([`Outbox::stamp`]),
//!   unless a `send` holds the sending lock: that one is delivering them, and the screen
//!   looks again when it is done. The screen holds the lock only while it reads.
//! - A `send` running beside the screen may still post an entry the screen also sends
//!   (`send` re-reads the file, the screen's own entries included); both use the entry's
//!   `client_id`, the server stores it once and answers both with the stored message, and
//!   whichever removes the entry first wins (the other's remove finds nothing). The worst
//!   case is one message sent twice and stored once; nothing is removed before the server
//!   has answered for it, so nothing is lost.
//!
//! A `NATTER_TOKEN` that matches no stored account has no known name: its messages wait in
//! `@token-<hash of the token>.jsonl` ([`Outbox::for_token`]), which only a `send` with the
//! same token reads (`@` cannot occur in a username, so it never meets a user's file).

use std::path::{Path, PathBuf};

use anyhow::Context;
use natter_shared::protocol::SendMessage;
use natter_shared::{ClientId, Timestamp, Username};
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
    /// When it was typed (Enter in the chat screen, taken by `natter send`), shown while it
    /// waits. Absent from records written before natter kept it, which still load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typed_at: Option<Timestamp>,
}

impl Outgoing {
    /// The send as the protocol carries it, on the socket or by POST (one encoding for
    /// both, in the shared crate).
    pub fn to_send(&self) -> SendMessage {
        SendMessage {
            sender_username: None,
            receiver_username: self.receiver.clone(),
            text: self.text.clone(),
            client_id: Some(self.client_id.clone()),
        }
    }
}

/// What an outbox file held when it was looked at: a hash of its bytes, so that one read
/// without the lock (every write replaces the whole file, see [`paths::write_atomic`])
/// tells whether anyone has changed it since. Content, not `stat`: inode numbers are
/// reused and modification times are coarser than two quick writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp(u64);

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

    /// The outbox of a bearer token whose user is not known (a `NATTER_TOKEN` that no stored
    /// account has), in `dir`. Named after a hash of the token, not the token itself.
    pub fn for_token(dir: &Path, token: &str) -> Self {
        Outbox {
            path: dir.join(format!("@token-{:016x}.jsonl", fnv1a64(token.as_bytes()))),
        }
    }

    /// Where it lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's [`Stamp`] now; `None` when there is no file (or it cannot be read, which
    /// reading its entries will then report).
    pub fn stamp(&self) -> Option<Stamp> {
        let bytes = std::fs::read(&self.path).ok()?;
        Some(Stamp(fnv1a64(&bytes)))
    }

    /// Takes this outbox's sending lock if no other process holds it (`Ok(None)` if one
    /// does). Whoever holds it is the only `natter send` posting these entries; see the
    /// module documentation.
    pub fn try_lock_sending(&self) -> anyhow::Result<Option<paths::HeldLock>> {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".sending");
        paths::try_lock(Path::new(&name))
    }

    /// The entries, and the lines that are not entries (a hand edit, a damaged disk). Those
    /// are never sent, but every rewrite keeps them, after the entries: nothing typed is
    /// dropped because a neighbour is unreadable, and nothing unreadable is deleted.
    fn read(&self) -> anyhow::Result<(Vec<Outgoing>, Vec<String>)> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.path.display())),
        };
        let mut entries = Vec::new();
        let mut unreadable = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str(line) {
                Ok(e) => entries.push(e),
                Err(_) => unreadable.push(line.to_owned()),
            }
        }
        if !unreadable.is_empty() {
            tracing::warn!(
                path = %self.path.display(),
                lines = unreadable.len(),
                "outbox lines that are not messages are kept but not sent"
            );
        }
        Ok((entries, unreadable))
    }

    fn write(&self, entries: &[Outgoing], unreadable: &[String]) -> anyhow::Result<()> {
        let mut text = String::new();
        for e in entries {
            text.push_str(&serde_json::to_string(e).context("encoding outbox entry")?);
            text.push('\n');
        }
        for line in unreadable {
            text.push_str(line);
            text.push('\n');
        }
        paths::write_atomic(&self.path, text.as_bytes())
    }

    /// The waiting messages, oldest first.
    pub fn entries(&self) -> anyhow::Result<Vec<Outgoing>> {
        paths::with_lock(&self.path, || Ok(self.read()?.0))
    }

    /// Appends `entry` (durably) unless its client_id is already there.
    pub fn push(&self, entry: &Outgoing) -> anyhow::Result<()> {
        paths::with_lock(&self.path, || {
            let (mut all, unreadable) = self.read()?;
            if !all.iter().any(|e| e.client_id == entry.client_id) {
                all.push(entry.clone());
                self.write(&all, &unreadable)?;
            }
            Ok(())
        })
    }

    /// Removes the entry with `client_id`, if present.
    pub fn remove(&self, client_id: &ClientId) -> anyhow::Result<()> {
        paths::with_lock(&self.path, || {
            let (mut all, unreadable) = self.read()?;
            let before = all.len();
            all.retain(|e| &e.client_id != client_id);
            if all.len() != before {
                self.write(&all, &unreadable)?;
            }
            Ok(())
        })
    }
}

/// 64-bit FNV-1a: a hash that stays the same across Rust versions (the standard library's
/// does not promise to), so a token's outbox keeps its name.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(id: &str) -> Outgoing {
        Outgoing {
            client_id: ClientId::parse(id).unwrap(),
            receiver: None,
            text: format!("text {id}"),
            typed_at: None,
        }
    }

    #[test]
    fn unreadable_lines_are_kept_but_not_sent() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::new(dir.path(), &Username::parse("alice").unwrap());
        ob.push(&out("a")).unwrap();
        let damaged = "{\"client_id\":\"x\",\"text\": oops";
        let mut text = std::fs::read_to_string(ob.path()).unwrap();
        text.push_str(damaged);
        text.push('\n');
        std::fs::write(ob.path(), text).unwrap();
        ob.push(&out("b")).unwrap();
        ob.remove(&ClientId::parse("a").unwrap()).unwrap();
        let ids: Vec<_> = ob
            .entries()
            .unwrap()
            .into_iter()
            .map(|e| e.client_id.to_string())
            .collect();
        assert_eq!(ids, ["b"]);
        let text = std::fs::read_to_string(ob.path()).unwrap();
        assert!(text.lines().any(|l| l == damaged), "{text}");
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

    #[test]
    fn records_without_a_typed_time_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::new(dir.path(), &Username::parse("alice").unwrap());
        std::fs::write(
            ob.path(),
            "{\"client_id\":\"old\",\"receiver\":null,\"text\":\"from before\"}\n",
        )
        .unwrap();
        let typed = Outgoing {
            typed_at: Some(Timestamp::from_unix_millis(1_795_512_120_000)),
            ..out("new")
        };
        ob.push(&typed).unwrap();
        let entries = ob.entries().unwrap();
        assert_eq!(entries[0].text, "from before");
        assert_eq!(entries[0].typed_at, None);
        assert_eq!(entries[1], typed);
        let text = std::fs::read_to_string(ob.path()).unwrap();
        assert!(
            text.lines().next().is_some_and(|l| !l.contains("typed_at")),
            "{text}"
        );
        assert!(
            text.contains("\"typed_at\":\"2026-11-24T09:22:00.000Z\""),
            "{text}"
        );
    }

    #[test]
    fn the_stamp_follows_the_contents() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::new(dir.path(), &Username::parse("alice").unwrap());
        assert_eq!(ob.stamp(), None);
        ob.push(&out("a")).unwrap();
        let one = ob.stamp();
        assert!(one.is_some());
        ob.entries().unwrap();
        assert_eq!(ob.stamp(), one, "reading changes nothing");
        ob.remove(&ClientId::parse("a").unwrap()).unwrap();
        ob.push(&out("b")).unwrap();
        assert_ne!(ob.stamp(), one, "same length, another entry");
    }

    #[test]
    fn token_outboxes_are_stable_and_never_a_users() {
        let dir = Path::new("/x");
        let t = Outbox::for_token(dir, "secret-token");
        assert_eq!(t.path(), Outbox::for_token(dir, "secret-token").path());
        assert_ne!(t.path(), Outbox::for_token(dir, "other-token").path());
        let name = t.path().file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("@token-") && !name.contains("secret"),
            "{name}"
        );
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
