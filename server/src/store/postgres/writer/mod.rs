//! The writer task: the one PostgreSQL connection that writes, committing in groups.
//!
//! As on SQLite, it waits for the first queued write, takes every other write already
//! queued (up to [`MAX_BATCH`]), applies them in one transaction, commits once, hands the
//! new messages to `on_commit` in id order, and only then answers each caller.
//!
//! Message ids come from the one row of `message_counter`, taken `FOR UPDATE` in the batch's
//! transaction: a batch numbers its messages after the row's `last_id`, inserts them all in
//! one statement, moves the row on and commits. Any other writer of the same database waits
//! on the row until this commit, so ids become visible strictly in id order — which a
//! sequence would not give (it hands ids out before commit, so 11 could commit before 10, and
//! a client resuming after 11 would never see 10). Holding the row also makes the batch's
//! "has this client_id been used" lookup race-free, across writers too.
//!
//! Nothing here uses savepoints: unlike SQLite, a failed statement aborts a PostgreSQL
//! transaction, so every statement is written not to fail on a client's input (duplicates
//! are looked up first, a taken name is `ON CONFLICT DO NOTHING`). A statement that fails
//! anyway is a storage fault or a bug, and fails the whole batch: nothing in it is
//! acknowledged.
//!
//! **Nothing committed goes unpublished.** A batch whose COMMIT reply is lost (a cut
//! connection, a timeout) may have committed all the same; its senders were told 503 and
//! the sink never saw its messages, so live sockets would skip them for good (a client
//! resumes after the newest id it saw). Whenever the counter is past the newest id the sink
//! has delivered ([`CommitSink::delivered`], read under the row lock in a batch, or by the
//! idle probe) the writer reads the ids in between and hands them over first, in order. The
//! same read is how this instance learns of other instances' commits when there is no bus,
//! or while it is down: the idle probe is the polling that keeps cross-instance delivery
//! within about a second.
//!
//! A PostgreSQL out of reach fails writes as [`StoreError::Unavailable`]; the connection is
//! then made anew (at most every [`RETRY_INTERVAL`]). While idle the writer probes the
//! database every [`PROBE_INTERVAL`], so the health flag (and `/readyz`) follows it without
//! a write. A batch or probe is bounded by the query timeout; a batch that times out (or
//! whose COMMIT is cut off) may in fact have committed: its callers are answered
//! `Unavailable`, and a retry with the same client_id gets the stored message back.
//!
//! Layout: this file (the batch loop [`run`], the [`Writer`]'s connection, probe, commit
//! and answers: what happens around a batch), `apply` (the SQL of one batch's writes, in
//! its transaction), `statements` (the write connection and its prepared statements),
//! `unpublished` (reading what was committed but not delivered).

mod apply;
mod statements;
mod unpublished;

use std::sync::Arc;
use std::time::{Duration, Instant};

use natter_shared::Message;
use tokio::sync::mpsc;

use self::apply::{UserCache, apply};
use self::statements::{Conn, Statements};
use self::unpublished::unpublished;
pub(super) use self::unpublished::{BETWEEN_SQL, messages_between};
use super::{QUERY_TIMEOUT, condition_of, reason};
use crate::store::health::{Condition, Health};
use crate::store::{MAX_BATCH, OnCommit, RegisterOutcome, SendOutcome, StoreError, Write};

/// How often an idle writer checks that PostgreSQL still answers.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// After a failed connect, writes fail at once for this long instead of each batch waiting
/// for its own connect to fail.
const RETRY_INTERVAL: Duration = Duration::from_millis(500);

/// What the writer task owns.
pub(super) struct Writer {
    config: tokio_postgres::Config,
    /// The write connection; `None` after it was lost, until the next connect.
    client: Option<Conn>,
    /// When connecting last failed.
    failed_at: Option<Instant>,
    health: Arc<Health>,
    on_commit: OnCommit,
    users: UserCache,
    /// Test hook: committed batches still to be answered as if their COMMIT reply was lost.
    lose_answers: u32,
    /// Test hook: abort the process after the first commit that stores a message.
    die_after_commit: bool,
}

/// What applying one write produced, waiting for the commit to be answered.
enum Done {
    Message(Result<SendOutcome, StoreError>),
    Register(Result<RegisterOutcome, StoreError>),
    Token(Result<(), StoreError>),
}

impl Writer {
    pub(super) fn new(
        config: tokio_postgres::Config,
        health: Arc<Health>,
        on_commit: OnCommit,
        hooks: crate::store::TestHooks,
    ) -> Writer {
        Writer {
            config,
            client: None,
            failed_at: None,
            health,
            on_commit,
            users: UserCache::new(),
            lose_answers: hooks.lost_commit_answers,
            die_after_commit: hooks.die_after_commit,
        }
    }

    /// Hands the sink what was committed but never delivered here (by another instance, or
    /// by a batch whose COMMIT answer was lost), before anything newer.
    fn hand_over(&self, missed: &[Message]) {
        if !missed.is_empty() {
            // Debug, not warn: with several instances and no bus, every batch of the others
            // lands here.
            tracing::debug!(
                count = missed.len(),
                "found messages committed elsewhere or by a lost answer"
            );
            self.on_commit.found(missed);
        }
    }

    /// The write connection, connecting if there is none; the reason if there cannot be one.
    async fn take_client(&mut self) -> Result<Conn, String> {
        if let Some(conn) = self.client.take()
            && !conn.client.is_closed()
        {
            return Ok(conn);
        }
        if let Some(at) = self.failed_at
            && at.elapsed() < RETRY_INTERVAL
        {
            return Err("PostgreSQL could not be reached a moment ago".into());
        }
        let connected = tokio::time::timeout(QUERY_TIMEOUT, async {
            let client = super::connect(&self.config).await?;
            let st = Statements::prepare(&client).await?;
            Ok::<_, tokio_postgres::Error>(Conn { client, st })
        })
        .await;
        match connected {
            Ok(Ok(conn)) => {
                self.failed_at = None;
                Ok(conn)
            }
            Ok(Err(e)) => {
                self.failed_at = Some(Instant::now());
                Err(format!("cannot connect to PostgreSQL: {}", reason(&e)))
            }
            Err(_) => {
                self.failed_at = Some(Instant::now());
                Err("connecting to PostgreSQL timed out".into())
            }
        }
    }

    /// Checks that PostgreSQL answers, reconnecting if needed; records the outcome.
    async fn probe(&mut self) {
        let client = match self.take_client().await {
            Ok(c) => c,
            Err(cause) => return self.health.set(Condition::Failing, &cause),
        };
        let delivered = self.on_commit.delivered().0;
        let checked = tokio::time::timeout(QUERY_TIMEOUT, unpublished(&client, delivered)).await;
        match checked {
            Ok(Ok(missed)) => {
                self.client = Some(client);
                self.hand_over(&missed);
                // Only a lost database is healed by an answer; a full disk is healed by a
                // write that fits.
                if self.health.get() == Condition::Failing {
                    self.health.set(Condition::Writable, "");
                }
            }
            Ok(Err(StoreError::Postgres(e))) => self.health.set(Condition::Failing, &reason(&e)),
            Ok(Err(e)) => self.health.set(Condition::Failing, &e.to_string()),
            Err(_) => self
                .health
                .set(Condition::Failing, "PostgreSQL did not answer in time"),
        }
    }

    /// Applies and commits `batch`, then answers every write in it.
    async fn commit(&mut self, batch: &mut Vec<Write>) {
        let size = batch.len();
        let mut client = match self.take_client().await {
            Ok(c) => c,
            Err(cause) => {
                self.health.set(Condition::Failing, &cause);
                for w in batch.drain(..) {
                    w.fail(StoreError::Unavailable);
                }
                return;
            }
        };
        let applied = tokio::time::timeout(
            QUERY_TIMEOUT,
            apply(&mut client, batch, &mut self.users, &*self.on_commit),
        )
        .await;
        let stored_any = matches!(&applied, Ok(Ok((done, _))) if done
            .iter()
            .any(|d| matches!(d, Some(Done::Message(Ok(SendOutcome::Stored(_)))))));
        if self.die_after_commit && stored_any {
            // Test hook: killed between the commit and everything after it.
            std::process::abort();
        }
        if self.lose_answers > 0 && stored_any {
            // Test hook: as if the COMMIT went through but its reply never came back.
            self.lose_answers -= 1;
            self.users.clear();
            drop(client);
            for w in batch.drain(..) {
                w.fail(StoreError::Unavailable);
            }
            return;
        }
        match applied {
            Ok(Ok((done, missed))) => {
                self.client = Some(client);
                self.hand_over(&missed);
                let own: Vec<Message> = done
                    .iter()
                    .filter_map(|d| match d {
                        Some(Done::Message(Ok(SendOutcome::Stored(m)))) => Some(m.clone()),
                        _ => None,
                    })
                    .collect();
                if !own.is_empty() {
                    self.on_commit.committed(&own);
                }
                tracing::debug!(size, stored = own.len(), "committed batch");
                self.health.set(Condition::Writable, "");
                for (w, d) in batch.drain(..).zip(done) {
                    answer(w, d);
                }
            }
            Ok(Err(e)) => {
                // It may have cached a receiver registered in this very batch.
                self.users.clear();
                let condition = match &e {
                    StoreError::Postgres(pg) => condition_of(pg),
                    _ => None,
                };
                let cause = match &e {
                    StoreError::Postgres(pg) => reason(pg),
                    other => other.to_string(),
                };
                match condition {
                    // Logged once per change of condition, not per batch.
                    Some(c) => {
                        tracing::debug!(size, %cause, "batch refused; nothing in it was stored");
                        self.health.set(c, &cause);
                    }
                    None => {
                        tracing::error!(error = %cause, size, "batch commit failed; nothing in it was stored");
                    }
                }
                // A lost connection is made anew; one that only refused a statement (its
                // transaction rolled back when dropped) is kept.
                if condition != Some(Condition::Failing) {
                    self.client = Some(client);
                }
                for w in batch.drain(..) {
                    w.fail(match condition {
                        Some(Condition::Full) => StoreError::Full,
                        Some(_) => StoreError::Unavailable,
                        None => StoreError::CommitFailed(cause.clone()),
                    });
                }
            }
            Err(_) => {
                self.users.clear();
                // The connection is in an unknown state mid-statement: dropped.
                drop(client);
                self.health
                    .set(Condition::Failing, "a batch did not commit in time");
                for w in batch.drain(..) {
                    w.fail(StoreError::Unavailable);
                }
            }
        }
    }
}

/// Runs the writer until every sender of `rx` is gone and the queue is drained.
pub(super) async fn run(mut writer: Writer, mut rx: mpsc::Receiver<Write>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let batch_size = metrics::histogram!(crate::metrics::COMMIT_BATCH);
    let commit_seconds = metrics::histogram!(crate::metrics::COMMIT_SECONDS);
    loop {
        let first = match tokio::time::timeout(PROBE_INTERVAL, rx.recv()).await {
            Ok(Some(w)) => w,
            Ok(None) => break,
            Err(_) => {
                writer.probe().await;
                continue;
            }
        };
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        let size = batch.len();
        let started = Instant::now();
        writer.commit(&mut batch).await;
        batch_size.record(size as f64);
        commit_seconds.record(started.elapsed());
    }
    tracing::debug!("store writer finished");
}

/// Answers a caller after the commit. A caller that stopped waiting (its client went away)
/// is no error: the write is committed either way.
fn answer(w: Write, d: Option<Done>) {
    match (w, d) {
        (Write::Message { reply, .. }, Some(Done::Message(r))) => drop(reply.send(r)),
        (Write::Register { reply, .. }, Some(Done::Register(r))) => drop(reply.send(r)),
        (
            Write::AddToken { reply, .. } | Write::RemoveToken { reply, .. },
            Some(Done::Token(r)),
        ) => drop(reply.send(r)),
        // Every write gets its own kind of outcome in `apply`; this is a bug, not a client's.
        (w, _) => w.fail(StoreError::CommitFailed("write was not applied".into())),
    }
}

#[cfg(test)]
mod tests;
