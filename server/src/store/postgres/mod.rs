//! The PostgreSQL backend: one database, one instance writing to it (for now).
//!
//! The shape is SQLite's: one writer task owns the one connection that writes and
//! group-commits whatever has queued (`writer`); reads go through a small deadpool of other
//! connections. Every query is bounded in time, so a PostgreSQL out of reach turns into
//! [`StoreError::Unavailable`] (503) within seconds, never a hang; the writer probes the
//! database while idle, so `/readyz` says so even when nobody writes.
//!
//! No TLS to PostgreSQL (`NoTls`): natter expects it on the same host or a private network;
//! put it behind a TLS tunnel otherwise.
//!
//! Layout: `schema` (whose database this is, migrations under an advisory lock), `writer`
//! (the group-committing task and its batch loop; the SQL of each write, in `writer::apply`;
//! message ids from a counter row), `import` (writing a copied
//! database in, for `migrate`).

pub(super) mod import;
mod schema;
mod writer;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use natter_shared::{Message, MessageId, Username};
use tokio::sync::mpsc;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, Row};

use super::health::{Condition, Health};
use super::{
    HistoryQuery, OnCommit, PgTarget, StoreError, StoredMessage, User, UserId, UserRecord, Write,
};

/// Read connections at most.
const READERS: usize = 8;

/// Longest a read (waiting for a pooled connection included) or a batch may take: past it
/// the caller gets [`StoreError::Unavailable`] and the connection is given up.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// The read side: a pool of connections.
#[derive(Clone)]
pub(super) struct Reads {
    pool: Pool,
    target: Arc<PgTarget>,
}

/// Connects, checks and migrates the database (before anything listens), then starts the
/// writer task on the current tokio runtime.
pub(super) fn open(
    target: &PgTarget,
    on_commit: OnCommit,
    rx: mpsc::Receiver<Write>,
    health: Arc<Health>,
    hooks: super::TestHooks,
) -> Result<(Reads, tokio::task::JoinHandle<()>), StoreError> {
    let shown = target.to_string();
    let config = target.config().clone();
    on_own_runtime(&shown, || async move {
        let mut client = connect(&config).await?;
        schema::migrate(&mut client).await
    })?
    .map_err(|r| r.into_error(shown.clone()))?;
    // Everything committed so far counts as delivered: live delivery begins after it.
    let config = target.config().clone();
    let newest = on_own_runtime(&shown, || async move {
        let client = connect(&config).await.map_err(read_error)?;
        newest_id_in(&client).await
    })??;
    on_commit.stored_up_to(newest);
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| StoreError::Connect {
        target: shown.clone(),
        reason: "the PostgreSQL store needs a tokio runtime".into(),
    })?;
    let task = runtime.spawn(writer::run(
        writer::Writer::new(target.config().clone(), health, on_commit, hooks),
        rx,
    ));
    let manager = Manager::from_config(
        target.config().clone(),
        NoTls,
        ManagerConfig {
            // Only `is_closed`: a connection PostgreSQL dropped is replaced; one that broke
            // silently fails its query, within QUERY_TIMEOUT.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(READERS)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(QUERY_TIMEOUT))
        .create_timeout(Some(QUERY_TIMEOUT))
        .recycle_timeout(Some(QUERY_TIMEOUT))
        .build()
        .map_err(|e| StoreError::Connect {
            target: shown.clone(),
            reason: e.to_string(),
        })?;
    Ok((
        Reads {
            pool,
            target: Arc::new(target.clone()),
        },
        task,
    ))
}

/// Runs `f`'s future to completion on a runtime of its own, on a thread of its own: start-up
/// is synchronous (`Server::open`), and blocking a thread of the caller's runtime on a
/// future of that same runtime could wait forever on a current-thread runtime.
pub(super) fn on_own_runtime<T, F, Fut>(shown: &str, f: F) -> Result<T, StoreError>
where
    T: Send,
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = T>,
{
    let failed = |reason: String| StoreError::Connect {
        target: shown.to_owned(),
        reason,
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| failed(format!("cannot start a runtime: {e}")))?;
            Ok(rt.block_on(f()))
        })
        .join()
        .unwrap_or_else(|_| Err(failed("the start-up thread panicked".into())))
    })
}

/// A new connection, its connection task spawned on the current runtime.
async fn connect(config: &tokio_postgres::Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// A PostgreSQL error in one line for the person starting the server: the server's own
/// message when it sent one (tokio-postgres' Display says only "db error").
fn reason(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

/// The storage fault behind a PostgreSQL error, if it is one: the disk is full, or the
/// database cannot be reached or used (connection lost, server shutting down, database gone,
/// too many connections). Anything else (a constraint, a bug) is not.
fn condition_of(e: &tokio_postgres::Error) -> Option<Condition> {
    if e.is_closed() {
        return Some(Condition::Failing);
    }
    let Some(code) = e.code() else {
        // No SQLSTATE: the socket failed (or connecting did), or a value did not convert.
        return match std::error::Error::source(e) {
            Some(s) if s.is::<std::io::Error>() => Some(Condition::Failing),
            _ => None,
        };
    };
    if *code == SqlState::DISK_FULL {
        return Some(Condition::Full);
    }
    let class = &code.code()[..2];
    // 08: connection exception; 53: insufficient resources; 57: operator intervention
    // (admin shutdown, cannot connect now); 3D: the database does not exist; 55000: it does
    // not allow connections.
    if matches!(class, "08" | "53" | "57" | "3D")
        || *code == SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE
    {
        return Some(Condition::Failing);
    }
    None
}

/// A read's error: a storage fault is [`StoreError::Unavailable`] (503), anything else a
/// database error.
fn read_error(e: tokio_postgres::Error) -> StoreError {
    match condition_of(&e) {
        Some(Condition::Full) => StoreError::Full,
        Some(_) => {
            tracing::debug!(error = %e, "PostgreSQL read failed");
            StoreError::Unavailable
        }
        None => StoreError::Postgres(e),
    }
}

impl Reads {
    /// Runs `f` on a pooled connection, all of it within [`QUERY_TIMEOUT`].
    async fn read<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(deadpool_postgres::Object) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let work = async {
            let client = self.pool.get().await.map_err(|e| {
                tracing::debug!(error = %e, "no PostgreSQL connection for a read");
                StoreError::Unavailable
            })?;
            f(client).await
        };
        match tokio::time::timeout(QUERY_TIMEOUT, work).await {
            Ok(r) => r,
            Err(_) => {
                tracing::debug!("PostgreSQL read timed out");
                Err(StoreError::Unavailable)
            }
        }
    }

    pub(super) async fn user_by_name(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        let key = name.to_ascii_lowercase();
        self.read(|c| async move {
            let stmt = c
                .prepare_cached(
                    "SELECT id, username, password_hash FROM users WHERE username_key = $1",
                )
                .await
                .map_err(read_error)?;
            let row = c.query_opt(&stmt, &[&key]).await.map_err(read_error)?;
            row.map(|r| -> Result<UserRecord, StoreError> {
                Ok(UserRecord {
                    user: user_from_row(&r)?,
                    password_hash: r.try_get(2)?,
                })
            })
            .transpose()
        })
        .await
    }

    pub(super) async fn user_by_token(
        &self,
        token_hash: [u8; 32],
    ) -> Result<Option<User>, StoreError> {
        self.read(|c| async move {
            let stmt = c
                .prepare_cached(
                    "SELECT u.id, u.username FROM tokens t JOIN users u ON u.id = t.user_id \
                     WHERE t.token_hash = $1",
                )
                .await
                .map_err(read_error)?;
            let row = c
                .query_opt(&stmt, &[&&token_hash[..]])
                .await
                .map_err(read_error)?;
            row.map(|r| user_from_row(&r)).transpose()
        })
        .await
    }

    pub(super) async fn usernames(&self) -> Result<Vec<Username>, StoreError> {
        self.read(|c| async move {
            let stmt = c
                .prepare_cached("SELECT id, username FROM users ORDER BY username_key")
                .await
                .map_err(read_error)?;
            let rows = c.query(&stmt, &[]).await.map_err(read_error)?;
            rows.iter()
                .map(|r| user_from_row(r).map(|u| u.username))
                .collect()
        })
        .await
    }

    pub(super) async fn visible_messages(
        &self,
        viewer: UserId,
        q: HistoryQuery,
    ) -> Result<Vec<Message>, StoreError> {
        self.read(|c| async move {
            let newest_first = q.after.is_none();
            let sql = format!(
                "SELECT m.id, s.username, r.username, m.text, m.created_at, m.client_id \
                 FROM messages m JOIN users s ON s.id = m.sender_id \
                 LEFT JOIN users r ON r.id = m.receiver_id \
                 WHERE m.id > $1 AND m.id < $2 \
                   AND (m.receiver_id IS NULL OR m.receiver_id = $3 OR m.sender_id = $3) \
                 ORDER BY m.id {} LIMIT $4",
                if newest_first { "DESC" } else { "ASC" }
            );
            let stmt = c.prepare_cached(&sql).await.map_err(read_error)?;
            let after = q.after.map_or(0, |m| m.0);
            let before = q.before.map_or(i64::MAX, |m| m.0);
            let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
            let rows = c
                .query(&stmt, &[&after, &before, &viewer.0, &limit])
                .await
                .map_err(read_error)?;
            let mut out = rows
                .iter()
                .map(message_from_row)
                .collect::<Result<Vec<_>, _>>()?;
            if newest_first {
                out.reverse();
            }
            Ok(out)
        })
        .await
    }

    /// Every message with an id in `(after, through]`, in id order (a gap fill: every one of
    /// them has committed).
    pub(super) async fn messages_between(
        &self,
        after: MessageId,
        through: MessageId,
    ) -> Result<Vec<Message>, StoreError> {
        self.read(|c| async move {
            let stmt = c
                .prepare_cached(writer::BETWEEN_SQL)
                .await
                .map_err(read_error)?;
            writer::messages_between(&**c, &stmt, after.0, through.0).await
        })
        .await
    }

    /// Blocking, for start-up: on a connection of its own, on a runtime of its own.
    pub(super) fn newest_message_id(&self) -> Result<MessageId, StoreError> {
        let shown = self.target.to_string();
        let config = self.target.config().clone();
        on_own_runtime(&shown, || async move {
            let client = connect(&config).await.map_err(read_error)?;
            newest_id_in(&client).await
        })?
    }

    pub(super) async fn newest_id(&self) -> Result<MessageId, StoreError> {
        self.read(|c| async move { newest_id_in(&c).await }).await
    }
}

async fn newest_id_in(c: &Client) -> Result<MessageId, StoreError> {
    // The counter, not MAX(id): the same number (ids are handed out densely and only
    // committed ones count), one row instead of an index probe.
    let row = c
        .query_one("SELECT last_id FROM message_counter", &[])
        .await
        .map_err(read_error)?;
    Ok(MessageId(row.try_get(0)?))
}

fn user_from_row(r: &Row) -> Result<User, StoreError> {
    let name: String = r.try_get(1)?;
    Ok(User {
        id: UserId(r.try_get(0)?),
        username: parse_stored(&name, Username::parse)?,
    })
}

/// Columns: id, sender name, receiver name, text, created_at, client_id.
fn message_from_row(r: &Row) -> Result<Message, StoreError> {
    StoredMessage {
        id: r.try_get(0)?,
        sender: r.try_get(1)?,
        receiver: r.try_get(2)?,
        text: r.try_get(3)?,
        created_ms: r.try_get(4)?,
        client_id: r.try_get(5)?,
    }
    .into_message()
    .map_err(|e| StoreError::BadRow(e.to_string()))
}

/// Values were validated before they were stored; one that no longer parses means a row was
/// edited by hand, which is reported as a database error rather than a panic.
fn parse_stored<T>(
    s: &str,
    parse: impl FnOnce(&str) -> Result<T, natter_shared::ValidationError>,
) -> Result<T, StoreError> {
    parse(s).map_err(|e| StoreError::BadRow(format!("{s:?}: {e}")))
}
