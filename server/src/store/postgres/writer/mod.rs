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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use natter_shared::{Message, MessageId, Timestamp, Username};
use tokio::sync::mpsc;
use tokio_postgres::{Client, Statement};

use super::{QUERY_TIMEOUT, condition_of, message_from_row, reason};
use crate::store::health::{Condition, Health};
use crate::store::{
    CommitSink, MAX_BATCH, OnCommit, RegisterOutcome, SendOutcome, StoreError, User, UserId, Write,
};

/// How often an idle writer checks that PostgreSQL still answers.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// After a failed connect, writes fail at once for this long instead of each batch waiting
/// for its own connect to fail.
const RETRY_INTERVAL: Duration = Duration::from_millis(500);

/// Receivers of direct messages already looked up: `username_key → (row id, stored name)`.
/// Users are never renamed or deleted, so an entry stays true once its transaction commits;
/// the cache is cleared when a batch fails.
type UserCache = HashMap<String, (i64, Username)>;

/// Entries the receiver cache may hold before it starts over (~100 bytes each).
const USER_CACHE_MAX: usize = 100_000;

/// The write connection and its statements, prepared once when it connects: a statement
/// given as text costs a round trip to prepare it before every use, and all but the first
/// of a batch's statements run while it holds the counter row that other writers wait for.
struct Conn {
    client: Client,
    st: Statements,
}

struct Statements {
    lock_counter: Statement,
    read_counter: Statement,
    set_counter: Statement,
    between: Statement,
    receivers: Statement,
    earlier: Statement,
    insert_messages: Statement,
    insert_user: Statement,
    insert_token: Statement,
    remove_token: Statement,
}

impl Statements {
    async fn prepare(c: &Client) -> Result<Statements, tokio_postgres::Error> {
        Ok(Statements {
            lock_counter: c
                .prepare("SELECT last_id FROM message_counter FOR UPDATE")
                .await?,
            read_counter: c.prepare("SELECT last_id FROM message_counter").await?,
            set_counter: c
                .prepare("UPDATE message_counter SET last_id = $1")
                .await?,
            between: c.prepare(BETWEEN_SQL).await?,
            receivers: c
                .prepare("SELECT id, username, username_key FROM users WHERE username_key = ANY($1)")
                .await?,
            earlier: c
                .prepare(
                    // One index probe per key, whatever the planner thinks of the table:
                    // LIMIT keeps the lateral subquery from being flattened into a join
                    // that may scan `messages` (seen: a backend busy with this query at
                    // 80 % of a core, growing with the table). The pair is unique anyway.
                    "SELECT m.id, s.username, r.username, m.text, m.created_at, m.client_id, m.sender_id \
                     FROM UNNEST($1::int8[], $2::text[]) AS k(sender_id, client_id) \
                     CROSS JOIN LATERAL (SELECT * FROM messages x \
                       WHERE x.sender_id = k.sender_id AND x.client_id = k.client_id LIMIT 1) m \
                     JOIN users s ON s.id = m.sender_id \
                     LEFT JOIN users r ON r.id = m.receiver_id",
                )
                .await?,
            insert_messages: c
                .prepare(
                    "INSERT INTO messages (id, sender_id, receiver_id, text, created_at, client_id) \
                     SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::int8[], $4::text[], \
                                          $5::int8[], $6::text[])",
                )
                .await?,
            insert_user: c
                .prepare(
                    "INSERT INTO users (username, username_key, password_hash, created_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (username_key) DO NOTHING RETURNING id",
                )
                .await?,
            insert_token: c
                .prepare("INSERT INTO tokens (token_hash, user_id, created_at) VALUES ($1, $2, $3)")
                .await?,
            remove_token: c
                .prepare("DELETE FROM tokens WHERE token_hash = $1")
                .await?,
        })
    }
}

/// Messages with ids in `($1, $2]`, in id order (for [`messages_between`]).
pub(super) const BETWEEN_SQL: &str = "SELECT m.id, s.username, r.username, m.text, m.created_at, m.client_id \
     FROM messages m JOIN users s ON s.id = m.sender_id \
     LEFT JOIN users r ON r.id = m.receiver_id \
     WHERE m.id > $1 AND m.id <= $2 ORDER BY m.id";

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
                if !missed.is_empty() {
                    // Debug, not warn: with several instances and no bus, every batch of
                    // the others lands here.
                    tracing::debug!(
                        count = missed.len(),
                        "found messages committed elsewhere or by a lost answer"
                    );
                    self.on_commit.found(&missed);
                }
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
                if !missed.is_empty() {
                    tracing::debug!(
                        count = missed.len(),
                        "found messages committed elsewhere or by a lost answer"
                    );
                    self.on_commit.found(&missed);
                }
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

/// The columns of the batch's new messages, for one `INSERT … SELECT FROM UNNEST`.
#[derive(Default)]
struct NewRows {
    ids: Vec<i64>,
    senders: Vec<i64>,
    receivers: Vec<Option<i64>>,
    texts: Vec<String>,
    created: Vec<i64>,
    client_ids: Vec<Option<String>>,
}

/// Applies `batch` in one transaction and commits it; each write's outcome, by position,
/// and the messages committed before it that were never published (ids past `published`
/// below the batch's own; see the module documentation).
async fn apply(
    conn: &mut Conn,
    batch: &[Write],
    users: &mut UserCache,
    sink: &dyn CommitSink,
) -> Result<(Vec<Option<Done>>, Vec<Message>), StoreError> {
    let mut missed = Vec::new();
    let st = &conn.st;
    let tx = conn.client.transaction().await?;
    let mut done: Vec<Option<Done>> = batch.iter().map(|_| None).collect();
    // Accounts first, then messages: all of them are answered after the one commit, so
    // either order is one the callers could have seen.
    for (i, w) in batch.iter().enumerate() {
        done[i] = match w {
            Write::Message { .. } => continue,
            Write::Register {
                username,
                password_hash,
                token_hash,
                ..
            } => Some(Done::Register(Ok(insert_user(
                &tx,
                st,
                username,
                password_hash,
                token_hash,
            )
            .await?))),
            Write::AddToken {
                user, token_hash, ..
            } => {
                insert_token(&tx, st, *user, token_hash).await?;
                Some(Done::Token(Ok(())))
            }
            Write::RemoveToken { token_hash, .. } => {
                tx.execute(&st.remove_token, &[&&token_hash[..]]).await?;
                Some(Done::Token(Ok(())))
            }
        };
    }
    let messages: Vec<(usize, &User, &natter_shared::protocol::SendMessage)> = batch
        .iter()
        .enumerate()
        .filter_map(|(i, w)| match w {
            Write::Message {
                sender, message, ..
            } => Some((i, sender, message)),
            _ => None,
        })
        .collect();
    if !messages.is_empty() {
        let mut last: i64 = tx.query_one(&st.lock_counter, &[]).await?.try_get(0)?;
        let delivered = sink.delivered().0;
        if last > delivered {
            // Under the row lock every id up to `last` is committed and visible.
            missed = messages_between(&tx, &st.between, delivered, last).await?;
        }
        look_up_receivers(&tx, st, &messages, users).await?;
        let earlier = earlier_messages(&tx, st, &messages).await?;
        let mut in_batch: HashMap<(i64, String), Message> = HashMap::new();
        let mut rows = NewRows::default();
        for (i, sender, m) in messages {
            let key = m
                .client_id
                .as_ref()
                .map(|c| (sender.id.0, c.as_str().to_owned()));
            // A retry is a duplicate before anything else, as on SQLite.
            if let Some(k) = &key
                && let Some(first) = earlier.get(k).or_else(|| in_batch.get(k))
            {
                done[i] = Some(Done::Message(Ok(SendOutcome::Duplicate(first.clone()))));
                continue;
            }
            let receiver = match &m.receiver_username {
                None => None,
                Some(name) => match users.get(&name.key()) {
                    Some(found) => Some(found.clone()),
                    None => {
                        done[i] = Some(Done::Message(Ok(SendOutcome::UnknownReceiver(
                            name.to_string(),
                        ))));
                        continue;
                    }
                },
            };
            last += 1;
            let message = Message {
                id: MessageId(last),
                sender_username: sender.username.clone(),
                receiver_username: receiver.as_ref().map(|r| r.1.clone()),
                text: m.text.clone(),
                created_at: Timestamp::now(),
                client_id: m.client_id.clone(),
            };
            rows.ids.push(last);
            rows.senders.push(sender.id.0);
            rows.receivers.push(receiver.map(|r| r.0));
            rows.texts.push(message.text.clone());
            rows.created.push(message.created_at.unix_millis());
            rows.client_ids
                .push(message.client_id.as_ref().map(|c| c.as_str().to_owned()));
            if let Some(k) = key {
                in_batch.insert(k, message.clone());
            }
            done[i] = Some(Done::Message(Ok(SendOutcome::Stored(message))));
        }
        if !rows.ids.is_empty() {
            tx.execute(
                &st.insert_messages,
                &[
                    &rows.ids,
                    &rows.senders,
                    &rows.receivers,
                    &rows.texts,
                    &rows.created,
                    &rows.client_ids,
                ],
            )
            .await?;
            tx.execute(&st.set_counter, &[&last]).await?;
        }
    }
    tx.commit().await?;
    Ok((done, missed))
}

/// The messages committed past `published`, in id order, read without the row lock: the
/// counter and the rows it counts commit together, so what it says is there is there.
async fn unpublished(conn: &Conn, delivered: i64) -> Result<Vec<Message>, StoreError> {
    let last: i64 = conn
        .client
        .query_one(&conn.st.read_counter, &[])
        .await?
        .try_get(0)?;
    if last <= delivered {
        return Ok(Vec::new());
    }
    messages_between(&conn.client, &conn.st.between, delivered, last).await
}

/// The messages with ids in `(after, through]`, in id order.
pub(super) async fn messages_between<S>(
    client: &impl tokio_postgres::GenericClient,
    statement: &S,
    after: i64,
    through: i64,
) -> Result<Vec<Message>, StoreError>
where
    S: tokio_postgres::ToStatement + Sync + Send + ?Sized,
{
    let rows = client.query(statement, &[&after, &through]).await?;
    rows.iter().map(message_from_row).collect()
}

/// Puts every receiver the batch names that is not cached yet into the cache, with one
/// query; names that are not there stay out (unknown receivers).
async fn look_up_receivers(
    tx: &tokio_postgres::Transaction<'_>,
    st: &Statements,
    messages: &[(usize, &User, &natter_shared::protocol::SendMessage)],
    users: &mut UserCache,
) -> Result<(), StoreError> {
    let mut wanted: Vec<String> = messages
        .iter()
        .filter_map(|(_, _, m)| m.receiver_username.as_ref().map(Username::key))
        .filter(|k| !users.contains_key(k))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    wanted.sort_unstable();
    wanted.dedup();
    if users.len() + wanted.len() > USER_CACHE_MAX {
        users.clear();
    }
    let rows = tx.query(&st.receivers, &[&wanted]).await?;
    for r in rows {
        let stored: String = r.try_get(1)?;
        let Ok(name) = Username::parse(&stored) else {
            continue;
        };
        users.insert(r.try_get(2)?, (r.try_get(0)?, name));
    }
    Ok(())
}

/// The messages stored earlier under the batch's (sender, client_id) pairs, with one query.
async fn earlier_messages(
    tx: &tokio_postgres::Transaction<'_>,
    st: &Statements,
    messages: &[(usize, &User, &natter_shared::protocol::SendMessage)],
) -> Result<HashMap<(i64, String), Message>, StoreError> {
    let (senders, client_ids): (Vec<i64>, Vec<String>) = messages
        .iter()
        .filter_map(|(_, s, m)| {
            m.client_id
                .as_ref()
                .map(|c| (s.id.0, c.as_str().to_owned()))
        })
        .unzip();
    let mut found = HashMap::new();
    if senders.is_empty() {
        return Ok(found);
    }
    let rows = tx.query(&st.earlier, &[&senders, &client_ids]).await?;
    for r in rows {
        let message = message_from_row(&r)?;
        let sender: i64 = r.try_get(6)?;
        if let Some(cid) = &message.client_id {
            found.insert((sender, cid.as_str().to_owned()), message);
        }
    }
    Ok(found)
}

async fn insert_user(
    tx: &tokio_postgres::Transaction<'_>,
    st: &Statements,
    username: &Username,
    password_hash: &str,
    token_hash: &[u8; 32],
) -> Result<RegisterOutcome, StoreError> {
    let now = Timestamp::now().unix_millis();
    // ON CONFLICT: a taken name is an outcome, not an error that would abort the batch (and
    // another writer inserting the same name concurrently is waited for, then seen).
    let row = tx
        .query_opt(
            &st.insert_user,
            &[&username.as_str(), &username.key(), &password_hash, &now],
        )
        .await?;
    let Some(row) = row else {
        return Ok(RegisterOutcome::Taken);
    };
    let id = UserId(row.try_get(0)?);
    insert_token(tx, st, id, token_hash).await?;
    Ok(RegisterOutcome::Created(User {
        id,
        username: username.clone(),
    }))
}

async fn insert_token(
    tx: &tokio_postgres::Transaction<'_>,
    st: &Statements,
    user: UserId,
    token_hash: &[u8; 32],
) -> Result<(), StoreError> {
    tx.execute(
        &st.insert_token,
        &[&&token_hash[..], &user.0, &Timestamp::now().unix_millis()],
    )
    .await?;
    Ok(())
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
