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

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use natter_shared::protocol::SendMessage;
use natter_shared::{ClientId, Timestamp, Username};
use serde::{Deserialize, Serialize};

pub use keeper::{Keeper, KeeperThread};
pub use log::Record;

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

/// Where an outbox file stood when last read: the file itself, held open, and its length.
/// The log only grows, except when a compaction replaces it with a new file, so a different
/// file at the path or a different length means someone wrote. Holding the old file open
/// keeps its inode from being reused by the new one, which would hide a compaction.
#[derive(Debug, Default)]
pub struct Watch {
    file: Option<File>,
    len: u64,
}

impl Watch {
    /// Whether the file at `path` is not the one last read, or has grown since.
    pub fn changed(&self, path: &Path) -> bool {
        let now = std::fs::metadata(path).ok();
        match (&self.file, now) {
            (None, None) => false,
            (Some(held), Some(now)) => {
                held.metadata()
                    .is_ok_and(|h| h.dev() != now.dev() || h.ino() != now.ino())
                    || now.len() != self.len
            }
            _ => true,
        }
    }

    /// The file was at `len_before` and we appended up to `len_after` on `file`: if that was
    /// the file last read and nobody had written since, we know it still.
    fn appended(&mut self, file: &File, len_before: u64, len_after: u64) {
        let same = match &self.file {
            Some(held) => match (held.metadata(), file.metadata()) {
                (Ok(h), Ok(f)) => h.dev() == f.dev() && h.ino() == f.ino(),
                _ => false,
            },
            None => self.len == 0 && len_before == 0,
        };
        if same && self.len == len_before {
            if self.file.is_none() {
                self.file = file.try_clone().ok();
            }
            self.len = len_after;
        }
    }
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

    fn ids(ob: &Outbox) -> Vec<String> {
        ob.entries()
            .unwrap()
            .into_iter()
            .map(|e| e.client_id.to_string())
            .collect()
    }

    /// A crash in the middle of an append leaves a torn last record: it is ignored, and the
    /// next append cuts it off rather than gluing a record to it.
    #[test]
    fn an_append_after_a_torn_record_starts_on_a_line_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::new(dir.path(), &Username::parse("alice").unwrap());
        ob.push(&out("a")).unwrap();
        let whole = std::fs::read(ob.path()).unwrap();
        let torn = Record::Add(out("b")).line();
        let mut bytes = whole.clone();
        bytes.extend_from_slice(&torn.as_bytes()[..torn.len() / 2]);
        std::fs::write(ob.path(), &bytes).unwrap();
        assert_eq!(ids(&ob), ["a"], "the torn record is not read");
        ob.push(&out("c")).unwrap();
        assert_eq!(ids(&ob), ["a", "c"]);
        let text = std::fs::read_to_string(ob.path()).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
    }

    /// An outbox of the format before the log (one object per waiting message) reads as it
    /// did, and the first read rewrites it as a log.
    #[test]
    fn an_old_outbox_is_migrated_on_first_read() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::new(dir.path(), &Username::parse("alice").unwrap());
        std::fs::write(
            ob.path(),
            "{\"client_id\":\"o1\",\"receiver\":null,\"text\":\"one\"}\n{\"client_id\":\"o2\",\"receiver\":\"bob\",\"text\":\"two\",\"typed_at\":\"2026-11-24T09:22:00.000Z\"}\n",
        )
        .unwrap();
        assert_eq!(ids(&ob), ["o1", "o2"]);
        let text = std::fs::read_to_string(ob.path()).unwrap();
        assert!(
            text.lines().all(|l| l.starts_with("{\"op\":\"add\"")),
            "{text}"
        );
        let entries = ob.entries().unwrap();
        assert_eq!(entries[1].receiver, Some(Username::parse("bob").unwrap()));
        assert!(entries[1].typed_at.is_some());
    }

    /// Once done records outnumber waiting messages (and are enough to matter), a read
    /// rewrites the log with only what waits, the unreadable lines kept after it.
    #[test]
    fn the_log_is_compacted_when_mostly_dead() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::new(dir.path(), &Username::parse("alice").unwrap());
        ob.push(&out("keep")).unwrap();
        std::fs::write(
            ob.path(),
            format!(
                "{}not a record\n",
                std::fs::read_to_string(ob.path()).unwrap()
            ),
        )
        .unwrap();
        for i in 0..COMPACT_MIN_DEAD {
            let id = format!("m{i}");
            ob.push(&out(&id)).unwrap();
            ob.remove(&ClientId::parse(&id).unwrap()).unwrap();
        }
        let before = std::fs::read_to_string(ob.path()).unwrap().lines().count();
        assert_eq!(before, 2 + 2 * COMPACT_MIN_DEAD);
        assert_eq!(ids(&ob), ["keep"]);
        let text = std::fs::read_to_string(ob.path()).unwrap();
        assert_eq!(text.lines().collect::<Vec<_>>().len(), 2, "{text}");
        assert!(text.ends_with("not a record\n"), "{text}");
    }

    /// The watch tells a write by someone else (an append, a compaction that replaced the
    /// file) from none, and our own appends do not count as someone else's.
    #[test]
    fn the_watch_sees_others_writes_but_not_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::new(dir.path(), &Username::parse("alice").unwrap());
        let mut watch = ob.load().unwrap().watch;
        assert!(!watch.changed(ob.path()), "no file, and still none");
        ob.append(&[Record::Add(out("mine"))], Some(&mut watch))
            .unwrap();
        assert!(!watch.changed(ob.path()), "our own append");
        ob.push(&out("theirs")).unwrap();
        assert!(watch.changed(ob.path()), "another's append");
        let mut watch = ob.load().unwrap().watch;
        ob.append(&[Record::Add(out("mine2"))], Some(&mut watch))
            .unwrap();
        assert!(!watch.changed(ob.path()));
        // A compaction by someone else: a new file of its own at the path.
        let live = ob.entries().unwrap();
        let replay = log::Replay {
            live,
            ..log::Replay::default()
        };
        paths::with_lock(ob.path(), || ob.compact(&replay)).unwrap();
        assert!(watch.changed(ob.path()), "replaced");
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
