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
//!
//! Layout: this file (the batch loop, committing a batch and answering its callers),
//! `apply` (the SQL of each write), `fault` (which errors are storage faults, and what a
//! failed batch is answered), `tests`.

mod apply;
mod fault;

use std::sync::Arc;

use natter_shared::Message;
use rusqlite::Connection;
use tokio::sync::mpsc;

use self::apply::{UserCache, apply_write};
use self::fault::BatchFailure;
use super::file::{DbFile, DbLock};
use crate::store::health::{Condition, Health};
use crate::store::{MAX_BATCH, OnCommit, RegisterOutcome, Reply, SendOutcome, StoreError, Write};

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
