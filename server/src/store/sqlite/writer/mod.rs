//! The writer thread: the one connection that writes, committing in groups.
//!
//! It blocks for the first queued write, takes every other write already queued (up to
//! [`MAX_BATCH`]), applies them in one transaction (each registration in its own savepoint,
//! each message as a single statement, so one bad write cannot sink its neighbours), commits
//! once, hands the new messages to `on_commit`
//! and only then answers each caller. Under load, batches grow by themselves: the longer a
//! commit takes, the more writes queue up for the next one.
//!
//! Being the only writer also makes the checks race-free: "is this name taken", "has this
//! client_id been used" and the insert that follows run with no other writer in between.
//!
//! Storage faults fail writes, never acknowledge them: a write whose statement hits a full
//! disk or an I/O error is answered [`StoreError::Full`] / [`StoreError::Unavailable`]; if
//! SQLite rolled the whole transaction back meanwhile, or the database file is no longer at
//! its path just before the commit, the whole batch is. The outcome goes into the store's
//! [`Health`] flag after every batch.

use std::collections::HashMap;
use std::sync::Arc;

use natter_shared::protocol::SendMessage;
use natter_shared::{Message, MessageId, Timestamp, Username};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tokio::sync::mpsc;

use super::file::{DbFile, DbLock};
use super::message_from_row;
use crate::store::health::{Condition, Health};
use crate::store::{
    MAX_BATCH, OnCommit, RegisterOutcome, Reply, SendOutcome, StoreError, User, UserId, Write,
};

/// What applying a write produced, waiting for the commit to be answered.
enum Applied {
    Message(Reply<SendOutcome>, Result<SendOutcome, StoreError>),
    Register(Reply<RegisterOutcome>, Result<RegisterOutcome, StoreError>),
    Token(Reply<()>, Result<(), StoreError>),
}

/// What the writer thread owns.
pub(super) struct Writer {
    pub(super) conn: Connection,
    /// Held until the last batch is committed, so a server started after this one stops
    /// writing cannot overlap with it.
    pub(super) lock: DbLock,
    /// Checked before each commit.
    pub(super) file: Arc<DbFile>,
    /// Set after each batch.
    pub(super) health: Arc<Health>,
    pub(super) on_commit: OnCommit,
}

/// Starts the writer thread.
pub(super) fn spawn(writer: Writer, rx: mpsc::Receiver<Write>) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("natter-store-writer".into())
        .spawn(move || run(writer, rx))
        // Failing to start a thread at startup is unrecoverable (out of memory or pids).
        .unwrap_or_else(|e| panic!("cannot start the store writer thread: {e}"))
}

/// Receivers of direct messages already looked up: `username_key → (row id, stored name)`.
/// Users are never renamed or deleted, and only this thread adds them, so an entry stays
/// true once its transaction commits; the cache is cleared when a commit fails.
type UserCache = HashMap<String, (i64, Username)>;

/// Entries the receiver cache may hold before it starts over (~100 bytes each).
const USER_CACHE_MAX: usize = 100_000;

fn run(mut writer: Writer, mut rx: mpsc::Receiver<Write>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut users = UserCache::new();
    let batch_size = metrics::histogram!(crate::metrics::COMMIT_BATCH);
    let commit_seconds = metrics::histogram!(crate::metrics::COMMIT_SECONDS);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        let size = batch.len();
        let started = std::time::Instant::now();
        commit_batch(&mut writer, &mut batch, &mut users);
        batch_size.record(size as f64);
        commit_seconds.record(started.elapsed());
    }
    // The connection closes before the lock is released.
    let Writer { conn, lock, .. } = writer;
    drop(conn);
    drop(lock);
    tracing::debug!("store writer finished");
}

/// Why a batch did not commit.
struct BatchFailure {
    /// The storage fault, if it was one (else a bug, answered as a plain commit failure).
    condition: Option<Condition>,
    /// For the log.
    cause: String,
}

impl BatchFailure {
    fn sqlite(e: &rusqlite::Error) -> BatchFailure {
        BatchFailure {
            condition: condition_of(e),
            cause: e.to_string(),
        }
    }

    /// What each write of the failed batch is answered.
    fn error(&self) -> StoreError {
        match self.condition {
            Some(Condition::Full) => StoreError::Full,
            Some(_) => StoreError::Unavailable,
            None => StoreError::CommitFailed(self.cause.clone()),
        }
    }
}

/// The storage fault behind a SQLite error, if it is one: the disk (or page limit) is full,
/// or the file cannot be written. Anything else (a constraint, a bug) is not.
fn condition_of(e: &rusqlite::Error) -> Option<Condition> {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code()? {
        ErrorCode::DiskFull => Some(Condition::Full),
        ErrorCode::SystemIoFailure
        | ErrorCode::ReadOnly
        | ErrorCode::CannotOpen
        | ErrorCode::DatabaseCorrupt
        | ErrorCode::NotADatabase => Some(Condition::Failing),
        _ => None,
    }
}

/// Turns a write's SQLite error that is a storage fault into [`StoreError::Full`] /
/// [`StoreError::Unavailable`]; the condition and its cause, if so.
fn classify<T>(r: &mut Result<T, StoreError>) -> Option<(Condition, String)> {
    let Err(StoreError::Sqlite(e)) = r else {
        return None;
    };
    let condition = condition_of(e)?;
    let cause = e.to_string();
    *r = Err(match condition {
        Condition::Full => StoreError::Full,
        _ => StoreError::Unavailable,
    });
    Some((condition, cause))
}

impl Applied {
    fn classify(&mut self) -> Option<(Condition, String)> {
        match self {
            Applied::Message(_, r) => classify(r),
            Applied::Register(_, r) => classify(r),
            Applied::Token(_, r) => classify(r),
        }
    }
}

fn commit_batch(writer: &mut Writer, batch: &mut Vec<Write>, users: &mut UserCache) {
    let size = batch.len();
    let mut applied = Vec::with_capacity(size);
    // The worst storage fault a single write met, with its cause.
    let mut worst: Option<(Condition, String)> = None;
    let committed = (|| -> Result<(), BatchFailure> {
        let mut tx = writer
            .conn
            .transaction()
            .map_err(|e| BatchFailure::sqlite(&e))?;
        let mut aborted: Option<BatchFailure> = None;
        for w in batch.drain(..) {
            if let Some(failure) = &aborted {
                applied.push(reply_err(w, failure.error()));
                continue;
            }
            let mut a = apply_write(&mut tx, w, users);
            let fault = a.classify();
            // SQLite undoes a failed statement by itself, but after a full disk or an I/O
            // error it may roll back the whole transaction: the writes before this one are
            // gone, and the ones after would each commit on their own. So the batch fails
            // as a whole, and nothing in it is acknowledged.
            if tx.is_autocommit() {
                let (condition, cause) = fault
                    .clone()
                    .unwrap_or((Condition::Failing, "transaction rolled back".into()));
                aborted = Some(BatchFailure {
                    condition: Some(condition),
                    cause,
                });
            }
            if let Some(f) = fault
                && worst.as_ref().is_none_or(|(c, _)| f.0 > *c)
            {
                worst = Some(f);
            }
            applied.push(a);
        }
        if let Some(failure) = aborted {
            return Err(failure);
        }
        // A deleted or replaced file still takes commits (SQLite writes to the inode it has
        // open), and they vanish with this process: refuse them instead. One stat per
        // batch, next to an fsync.
        if !writer.file.is_in_place() {
            return Err(BatchFailure {
                condition: Some(Condition::Gone),
                cause: "the path no longer names the file this server opened".into(),
            });
        }
        tx.commit().map_err(|e| BatchFailure::sqlite(&e))
    })();
    // `drain` may have stopped early if the transaction failed to start.
    let leftover = std::mem::take(batch);
    match committed {
        Ok(()) => {
            let stored: Vec<Message> = applied
                .iter()
                .filter_map(|a| match a {
                    Applied::Message(_, Ok(SendOutcome::Stored(m))) => Some(m.clone()),
                    _ => None,
                })
                .collect();
            if !stored.is_empty() {
                writer.on_commit.committed(&stored);
            }
            tracing::debug!(size, stored = stored.len(), "committed batch");
            for a in applied {
                answer(a);
            }
            match worst {
                Some((condition, cause)) => writer.health.set(condition, &cause),
                None => writer.health.set(Condition::Writable, ""),
            }
        }
        Err(failure) => {
            // A failed COMMIT can leave the transaction open; the next batch needs it closed.
            if !writer.conn.is_autocommit() {
                let _ = writer.conn.execute_batch("ROLLBACK");
            }
            // It may have cached a receiver registered in this very batch.
            users.clear();
            match failure.condition {
                // Logged once per change of condition, not per batch.
                Some(condition) => {
                    tracing::debug!(size, cause = %failure.cause, "batch refused; nothing in it was stored");
                    writer.health.set(condition, &failure.cause);
                }
                None => {
                    tracing::error!(error = %failure.cause, size, "batch commit failed; nothing in it was stored");
                }
            }
            for a in applied {
                answer_failed(a, &failure);
            }
        }
    }
    for w in leftover {
        fail(w);
    }
}

/// Applies one write inside the batch's transaction, so that a failure undoes only that
/// write: a message is its one INSERT, which SQLite undoes by itself if it fails; the
/// other writes each run in their own savepoint ([`in_savepoint`]).
fn apply_write(tx: &mut Transaction<'_>, w: Write, users: &mut UserCache) -> Applied {
    match w {
        Write::Message {
            sender,
            message,
            reply,
        } => Applied::Message(
            reply,
            // No savepoint: a message's only write is its one INSERT, and a failed statement
            // is undone by SQLite on its own, leaving the rest of the batch intact. Two fewer
            // statements per message (SAVEPOINT, RELEASE, each parsed anew) on the hot path.
            insert_message(tx, &sender, message, users).map_err(StoreError::from),
        ),
        Write::Register {
            username,
            password_hash,
            token_hash,
            reply,
        } => Applied::Register(
            reply,
            in_savepoint(tx, |t| {
                insert_user(t, username, &password_hash, &token_hash)
            }),
        ),
        Write::AddToken {
            user,
            token_hash,
            reply,
        } => Applied::Token(
            reply,
            in_savepoint(tx, |t| insert_token(t, user, &token_hash)),
        ),
        Write::RemoveToken { token_hash, reply } => Applied::Token(
            reply,
            in_savepoint(tx, |t| {
                t.prepare_cached("DELETE FROM tokens WHERE token_hash = ?1")?
                    .execute([&token_hash[..]])
                    .map(drop)
            }),
        ),
    }
}

fn in_savepoint<T>(
    tx: &mut Transaction<'_>,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> Result<T, StoreError> {
    let sp = tx.savepoint()?;
    match f(&sp) {
        Ok(v) => {
            sp.commit()?;
            Ok(v)
        }
        // Dropping the savepoint rolls it back.
        Err(e) => Err(e.into()),
    }
}

fn insert_message(
    c: &Connection,
    sender: &User,
    m: SendMessage,
    users: &mut UserCache,
) -> rusqlite::Result<SendOutcome> {
    let receiver = match &m.receiver_username {
        None => None,
        Some(name) => match receiver(c, name, users)? {
            Some(found) => Some(found),
            // A retry is a duplicate before anything else, as it always was.
            None => {
                return Ok(match earlier_message(c, sender, &m)? {
                    Some(earlier) => SendOutcome::Duplicate(earlier),
                    None => SendOutcome::UnknownReceiver(name.to_string()),
                });
            }
        },
    };
    let created_at = Timestamp::now();
    let inserted = c
        .prepare_cached(
            "INSERT INTO messages (sender_id, receiver_id, text, created_at, client_id) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            sender.id.0,
            receiver.as_ref().map(|r| r.0),
            m.text,
            created_at.unix_millis(),
            m.client_id.as_ref().map(|c| c.as_str()),
        ]);
    match inserted {
        Ok(_) => {}
        // The unique (sender, client_id) index refused it: this client_id was used before.
        // Asking only now saves a SELECT on every new message; SQLite has undone the failed
        // statement and the rest of the batch goes on.
        Err(rusqlite::Error::SqliteFailure(e, msg))
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                && m.client_id.is_some() =>
        {
            return match earlier_message(c, sender, &m)? {
                Some(earlier) => Ok(SendOutcome::Duplicate(earlier)),
                None => Err(rusqlite::Error::SqliteFailure(e, msg)),
            };
        }
        Err(e) => return Err(e),
    }
    Ok(SendOutcome::Stored(Message {
        id: MessageId(c.last_insert_rowid()),
        sender_username: sender.username.clone(),
        receiver_username: receiver.map(|r| r.1),
        text: m.text,
        created_at,
        client_id: m.client_id,
    }))
}

/// The message `sender` stored earlier with `m`'s client_id, if any.
fn earlier_message(
    c: &Connection,
    sender: &User,
    m: &SendMessage,
) -> rusqlite::Result<Option<Message>> {
    let Some(cid) = &m.client_id else {
        return Ok(None);
    };
    c.prepare_cached(
        "SELECT m.id, s.username, r.username, m.text, m.created_at, m.client_id \
         FROM messages m JOIN users s ON s.id = m.sender_id \
         LEFT JOIN users r ON r.id = m.receiver_id \
         WHERE m.sender_id = ?1 AND m.client_id = ?2",
    )?
    .query_row(params![sender.id.0, cid.as_str()], message_from_row)
    .optional()
}

/// The receiver's row id and stored spelling (not the one the sender typed), from the
/// cache or the users table.
fn receiver(
    c: &Connection,
    name: &Username,
    users: &mut UserCache,
) -> rusqlite::Result<Option<(i64, Username)>> {
    let key = name.key();
    if let Some(found) = users.get(&key) {
        return Ok(Some(found.clone()));
    }
    let found = c
        .prepare_cached("SELECT id, username FROM users WHERE username_key = ?1")?
        .query_row([&key], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })
        .optional()?;
    if users.len() >= USER_CACHE_MAX {
        users.clear();
    }
    Ok(found.map(|(id, stored)| {
        let user = (id, Username::parse(&stored).unwrap_or(name.clone()));
        users.insert(key, user.clone());
        user
    }))
}

fn insert_user(
    c: &Connection,
    username: Username,
    password_hash: &str,
    token_hash: &[u8; 32],
) -> rusqlite::Result<RegisterOutcome> {
    let taken = c
        .prepare_cached("SELECT 1 FROM users WHERE username_key = ?1")?
        .exists([username.key()])?;
    if taken {
        return Ok(RegisterOutcome::Taken);
    }
    let now = Timestamp::now().unix_millis();
    c.prepare_cached(
        "INSERT INTO users (username, username_key, password_hash, created_at) \
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        username.as_str(),
        username.key(),
        password_hash,
        now
    ])?;
    let id = UserId(c.last_insert_rowid());
    insert_token(c, id, token_hash)?;
    Ok(RegisterOutcome::Created(User { id, username }))
}

fn insert_token(c: &Connection, user: UserId, token_hash: &[u8; 32]) -> rusqlite::Result<()> {
    c.prepare_cached("INSERT INTO tokens (token_hash, user_id, created_at) VALUES (?1, ?2, ?3)")?
        .execute(params![
            &token_hash[..],
            user.0,
            Timestamp::now().unix_millis()
        ])?;
    Ok(())
}

fn reply_err(w: Write, e: StoreError) -> Applied {
    match w {
        Write::Message { reply, .. } => Applied::Message(reply, Err(e)),
        Write::Register { reply, .. } => Applied::Register(reply, Err(e)),
        Write::AddToken { reply, .. } | Write::RemoveToken { reply, .. } => {
            Applied::Token(reply, Err(e))
        }
    }
}

/// Answers a caller after a successful commit. A caller that stopped waiting (its client
/// went away) is no error: the write is committed either way.
fn answer(a: Applied) {
    match a {
        Applied::Message(reply, r) => drop(reply.send(r)),
        Applied::Register(reply, r) => drop(reply.send(r)),
        Applied::Token(reply, r) => drop(reply.send(r)),
    }
}

fn answer_failed(a: Applied, failure: &BatchFailure) {
    let err = || failure.error();
    match a {
        Applied::Message(reply, _) => drop(reply.send(Err(err()))),
        Applied::Register(reply, _) => drop(reply.send(Err(err()))),
        Applied::Token(reply, _) => drop(reply.send(Err(err()))),
    }
}

fn fail(w: Write) {
    answer(reply_err(w, StoreError::Closed));
}

#[cfg(test)]
mod tests;
