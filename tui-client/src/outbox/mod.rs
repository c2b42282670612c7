//! Messages typed but not yet confirmed by the server, kept on disk so that neither a
//! dropped connection nor quitting the client (nor a kill at any instant) loses them.
//!
//! One file per (server, user): an append-only log ([`log`]) of an `add` record per
//! message queued and a `done` record per message the server answered for (confirmed by
//! the socket echo or the POST reply carrying its `client_id`, or refused for good). A
//! message is on disk (its `add` synced) before any attempt to send it, and is shown as
//! queued only from then on. Retries reuse the original `client_id`, so the server stores
//! each message exactly once however often it is sent.
//!
//! An append is one `write` and, for `add`s, one `fdatasync`, under the file's `flock`
//! ([`paths::with_lock`]), so concurrent natter processes never lose each other's records
//! and a crash tears at most the last one, which is then ignored ([`log`]). Every read
//! replays the log and, when dead lines (answered messages) outnumber the waiting ones,
//! compacts it: the waiting messages are written to a new file that replaces the old one
//! atomically ([`paths::write_atomic`]), under the same lock. That rewrite also migrates
//! an outbox of the format before the log.
//!
//! Who writes it: the chat screen's outbox keeper ([`keeper`], one thread, the only writer
//! in that process: it appends what is typed and what the network task says was answered)
//! and `natter send` (`cli/send.rs`), which appends the same records itself.
//!
//! Who sends what, when several run at once:
//! - `natter send` holds the outbox's *sending lock* ([`Outbox::try_lock_sending`], a second
//!   `flock`ed file, `<user>.jsonl.sending`) for its whole run, and sends the file's entries
//!   one at a time, oldest first, re-reading it before each. So two `send`s of one account
//!   take turns (the second waits, bounded) instead of both posting the same entry, and
//!   each learns the fate of exactly the messages it took.
//! - The chat screen loads the file when an identity starts and sends its own in-memory
//!   queue. After that it takes the entries others added (a `send` that gave up, or was
//!   killed, while the screen was open) when the file has changed ([`Watch`]),
//!   unless a `send` holds the sending lock: that one is delivering them, and the screen
//!   looks again when it is done. The screen holds the lock only while it reads.
//! - A `send` running beside the screen may still post an entry the screen also sends
//!   (`send` re-reads the file, the screen's own entries included); both use the entry's
//!   `client_id`, the server stores it once and answers both with the stored message, and
//!   both append a `done` (the second says nothing new). The worst
//!   case is one message sent twice and stored once; nothing is removed before the server
//!   has answered for it, so nothing is lost.
//!
//! A `NATTER_TOKEN` that matches no stored account has no known name: its messages wait in
//! `@token-<hash of the token>.jsonl` ([`Outbox::for_token`]), which only a `send` with the
//! same token reads (`@` cannot occur in a username, so it never meets a user's file).

pub mod keeper;
pub mod log;
mod watch;

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use natter_shared::protocol::SendMessage;
use natter_shared::{ClientId, Timestamp, Username};
use serde::{Deserialize, Serialize};

pub use keeper::{Keeper, KeeperThread};
pub use log::Record;
pub use watch::Watch;

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

/// The outbox file of one identity on one server.
#[derive(Debug, Clone)]
pub struct Outbox {
    path: PathBuf,
}

/// What [`Outbox::load`] read: the waiting messages, and where the file stood.
#[derive(Debug)]
pub struct Loaded {
    /// The waiting messages, oldest first.
    pub entries: Vec<Outgoing>,
    /// The file as read, to tell later whether anyone has written to it since.
    pub watch: Watch,
    /// Lines that no longer say anything (see [`log::Replay::dead`]).
    pub dead: usize,
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

    /// Takes this outbox's sending lock if no other process holds it (`Ok(None)` if one
    /// does). Whoever holds it is the only `natter send` posting these entries; see the
    /// module documentation.
    pub fn try_lock_sending(&self) -> anyhow::Result<Option<paths::HeldLock>> {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".sending");
        paths::try_lock(Path::new(&name))
    }

    /// Reads the log under its lock, compacting it first when that is due (which also
    /// rewrites an outbox of the old format as a log).
    pub fn load(&self) -> anyhow::Result<Loaded> {
        paths::with_lock(&self.path, || {
            let file = match File::open(&self.path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Ok(Loaded {
                        entries: Vec::new(),
                        watch: Watch::default(),
                        dead: 0,
                    });
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("reading {}", self.path.display()));
                }
            };
            let bytes =
                read_all(&file).with_context(|| format!("reading {}", self.path.display()))?;
            let replay = log::replay(&bytes);
            if !replay.unreadable.is_empty() {
                tracing::warn!(
                    path = %self.path.display(),
                    lines = replay.unreadable.len(),
                    "outbox lines that are not messages are kept but not sent"
                );
            }
            if replay.compaction_due(COMPACT_MIN_DEAD) {
                self.compact(&replay)?;
                let file = File::open(&self.path)
                    .with_context(|| format!("reading {}", self.path.display()))?;
                let len = file.metadata()?.len();
                return Ok(Loaded {
                    entries: replay.live,
                    watch: Watch {
                        file: Some(file),
                        len,
                    },
                    dead: 0,
                });
            }
            Ok(Loaded {
                entries: replay.live,
                watch: Watch {
                    file: Some(file),
                    len: bytes.len() as u64,
                },
                dead: replay.dead,
            })
        })
    }

    /// Replaces the log with its waiting messages (and the lines that are not records,
    /// after them: nothing unreadable is deleted). Atomic: a crash leaves the old log or
    /// the new one. Called under the lock.
    fn compact(&self, replay: &log::Replay) -> anyhow::Result<()> {
        let mut text = String::new();
        for o in &replay.live {
            text.push_str(&Record::Add(o.clone()).line());
        }
        for line in &replay.unreadable {
            text.push_str(line);
            text.push('\n');
        }
        paths::write_atomic(&self.path, text.as_bytes())
    }

    /// The waiting messages, oldest first.
    pub fn entries(&self) -> anyhow::Result<Vec<Outgoing>> {
        Ok(self.load()?.entries)
    }

    /// Queues `entry` (durably: on disk when this returns). Queuing one already waiting
    /// changes nothing.
    pub fn push(&self, entry: &Outgoing) -> anyhow::Result<()> {
        self.append(&[Record::Add(entry.clone())], None)
    }

    /// Says the server answered for `client_id`: it no longer waits.
    pub fn remove(&self, client_id: &ClientId) -> anyhow::Result<()> {
        self.append(
            &[Record::Done {
                client_id: client_id.clone(),
            }],
            None,
        )
    }

    /// Appends `records` in one write under the lock, and makes them durable when any is an
    /// `add` (a lost `done` only means one more send of a message the server stores once,
    /// so those ride on the next sync). A torn last record left by a crash is cut off
    /// first, so that the new ones start on a line of their own. With `watch`, keeps it
    /// knowing the file when nobody else wrote since it was read.
    pub fn append(&self, records: &[Record], watch: Option<&mut Watch>) -> anyhow::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let text: String = records.iter().map(Record::line).collect();
        let durable = records.iter().any(|r| matches!(r, Record::Add(_)));
        let at = || format!("writing {}", self.path.display());
        paths::with_lock(&self.path, || {
            let dir = self.path.parent().unwrap_or(Path::new("."));
            paths::create_private_dir(dir)?;
            let mut file = OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .mode(0o600)
                .open(&self.path)
                .with_context(at)?;
            let mut len = file.metadata().with_context(at)?.len();
            let created = len == 0;
            if len > 0 && !ends_with_newline(&file, len).with_context(at)? {
                let bytes = read_all(&file).with_context(at)?;
                let whole = log::replay(&bytes).whole as u64;
                tracing::warn!(path = %self.path.display(), bytes = len - whole, "outbox: cut off a torn last record");
                file.set_len(whole).with_context(at)?;
                len = whole;
            }
            file.write_all(text.as_bytes()).with_context(at)?;
            if durable {
                file.sync_data().with_context(at)?;
                if created && let Ok(d) = File::open(dir) {
                    // The new file's name must survive a crash too.
                    let _ = d.sync_all();
                }
            }
            if let Some(w) = watch {
                w.appended(&file, len, len + text.len() as u64);
            }
            Ok(())
        })
    }
}

/// Dead lines a log may gather before a compaction is worth it (see
/// [`log::Replay::compaction_due`]).
pub const COMPACT_MIN_DEAD: usize = 64;

fn read_all(mut file: &File) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn ends_with_newline(file: &File, len: u64) -> std::io::Result<bool> {
    let mut last = [0u8; 1];
    file.read_exact_at(&mut last, len - 1)?;
    Ok(last[0] == b'\n')
}

/// 64-bit FNV-1a: a hash that stays the same across Rust versions (the standard library's
/// does not promise to), so a token's outbox keeps its name.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
pub(crate) mod tests;
