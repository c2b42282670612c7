//! The SQLite backend: one file in WAL mode.
//!
//! All writes go through a single writer thread (`writer`) that group-commits whatever has
//! queued up: many concurrent sends share one transaction and one fsync, and each caller is
//! answered only after that commit. Reads use a small pool of separate connections, which
//! WAL lets run beside the writer.
//!
//! Layout: `writer` (the group-committing thread), `schema` (whose file this is,
//! migrations), `file` (the lock beside the database, "is the file still at its path"),
//! `export` (reading it all out, for `migrate`).

pub(super) mod export;
mod file;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use natter_shared::{Message, MessageId, Username};
use rusqlite::{Connection, MAIN_DB, OpenFlags, OptionalExtension, Row, params};
use tokio::sync::mpsc;

use super::health::{Condition, Health};
use super::{HistoryQuery, OnCommit, StoreError, StoredMessage, User, UserId, UserRecord, Write};

/// Read connections kept open for reuse.
const READERS_KEPT: usize = 8;

/// The read side: pooled connections, and the file whose identity the writer checks.
#[derive(Clone)]
pub(super) struct Reads {
    readers: Arc<ReaderPool>,
    file: Arc<file::DbFile>,
}

struct ReaderPool {
    path: PathBuf,
    // A std mutex: held only to pop or push a connection, never across an await.
    idle: Mutex<Vec<Connection>>,
}

/// Opens (creating if needed) and migrates the database at `path`, and starts the writer
/// thread on `rx`. Once every sender of `rx` is dropped the writer finishes what is queued
/// and the thread ends.
pub(super) fn open(
    path: &Path,
    max_page_count: Option<u32>,
    on_commit: OnCommit,
    rx: mpsc::Receiver<Write>,
    health: Arc<Health>,
) -> Result<(Reads, std::thread::JoinHandle<()>), StoreError> {
    let mut conn = connect(path, OpenFlags::SQLITE_OPEN_CREATE)?;
    // Reads only: a file that is not natter's is refused as it was, with nothing beside it.
    schema::check_owner(&conn, path)?;
    // Before anything writes: a second server must not even run migrations.
    let lock = file::DbLock::acquire(path)?;
    // SQLite opens a file it may not write read-only without a word; every send would
    // then fail. (A read-only directory fails below, where the WAL cannot be created.)
    if conn.is_readonly(MAIN_DB)? {
        return Err(StoreError::Open {
            path: path.to_owned(),
            reason: READ_ONLY.into(),
        });
    }
    configure(&conn, path)?;
    schema::migrate(&mut conn, path)?;
    if let Some(pages) = max_page_count {
        conn.pragma_update(None, "max_page_count", pages)?;
    }
    let file = Arc::new(file::DbFile::record(path)?);
    on_commit.stored_up_to(newest_id_in(&conn)?);
    let handle = writer::spawn(
        writer::Writer {
            conn,
            lock,
            file: Arc::clone(&file),
            health,
            on_commit,
        },
        rx,
    );
    let readers = Arc::new(ReaderPool {
        path: path.to_owned(),
        idle: Mutex::new(Vec::new()),
    });
    Ok((Reads { readers, file }, handle))
}

impl Reads {
    /// What the last batch found, except that a file deleted (or back) since is noticed
    /// here at once, with one `stat`, rather than at the next write.
    pub(super) fn condition(&self, health: &Health) -> Condition {
        let now = health.get();
        match now {
            Condition::Writable | Condition::Gone => {
                let seen = if self.file.is_in_place() {
                    Condition::Writable
                } else {
                    Condition::Gone
                };
                if seen != now {
                    health.set(seen, "seen by the readiness check");
                }
                seen
            }
            Condition::Full | Condition::Failing => now,
        }
    }

    /// The user with this name, ignoring case.
    pub(super) async fn user_by_name(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        let key = name.to_ascii_lowercase();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT id, username, password_hash FROM users WHERE username_key = ?1",
            )?
            .query_row([key], |r| {
                Ok(UserRecord {
                    user: user_from_row(r)?,
                    password_hash: r.get(2)?,
                })
            })
            .optional()
        })
        .await
    }

    /// The user a token hash belongs to.
    pub(super) async fn user_by_token(
        &self,
        token_hash: [u8; 32],
    ) -> Result<Option<User>, StoreError> {
        self.read(move |c| {
            c.prepare_cached(
                "SELECT u.id, u.username FROM tokens t JOIN users u ON u.id = t.user_id \
                 WHERE t.token_hash = ?1",
            )?
            .query_row([&token_hash[..]], user_from_row)
            .optional()
        })
        .await
    }

    /// Every username, alphabetically (ignoring case).
    pub(super) async fn usernames(&self) -> Result<Vec<Username>, StoreError> {
        self.read(|c| {
            let mut stmt =
                c.prepare_cached("SELECT id, username FROM users ORDER BY username_key")?;
            let rows = stmt.query_map([], user_from_row)?;
            rows.map(|r| r.map(|u| u.username)).collect()
        })
        .await
    }

    /// The messages `viewer` may see in the slice `q`, ascending by id.
    pub(super) async fn visible_messages(
        &self,
        viewer: UserId,
        q: HistoryQuery,
    ) -> Result<Vec<Message>, StoreError> {
        self.read(move |c| {
            let newest_first = q.after.is_none();
            let sql = format!(
                "SELECT m.id, s.username, r.username, m.text, m.created_at, m.client_id \
                 FROM messages m JOIN users s ON s.id = m.sender_id \
                 LEFT JOIN users r ON r.id = m.receiver_id \
                 WHERE m.id > ?1 AND m.id < ?2 \
                   AND (m.receiver_id IS NULL OR m.receiver_id = ?3 OR m.sender_id = ?3) \
                 ORDER BY m.id {} LIMIT ?4",
                if newest_first { "DESC" } else { "ASC" }
            );
            let mut stmt = c.prepare_cached(&sql)?;
            let after = q.after.map_or(0, |m| m.0);
            let before = q.before.map_or(i64::MAX, |m| m.0);
            let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
            let rows = stmt.query_map(params![after, before, viewer.0, limit], message_from_row)?;
            let mut out = rows.collect::<Result<Vec<_>, _>>()?;
            if newest_first {
                out.reverse();
            }
            Ok(out)
        })
        .await
    }

    /// The newest message id in the store (0 when there is none). Blocking: for start-up.
    pub(super) fn newest_message_id(&self) -> Result<MessageId, StoreError> {
        let conn = self.readers.take()?;
        let newest = newest_id_in(&conn);
        self.readers.give_back(conn);
        Ok(newest?)
    }

    /// [`newest_message_id`](Self::newest_message_id), off the async threads.
    pub(super) async fn newest_id(&self) -> Result<MessageId, StoreError> {
        self.read(newest_id_in).await
    }

    /// Runs `f` on a pooled read connection, off the async threads.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let pool = Arc::clone(&self.readers);
        tokio::task::spawn_blocking(move || {
            let conn = pool.take()?;
            let result = f(&conn);
            pool.give_back(conn);
            Ok(result?)
        })
        .await?
    }
}

impl ReaderPool {
    fn take(&self) -> Result<Connection, StoreError> {
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match pooled {
            Some(c) => Ok(c),
            None => {
                // Never CREATE: with the file deleted that would put an empty database at
                // its path, one the next start would take for a new one.
                let conn = connect(&self.path, OpenFlags::empty())?;
                configure(&conn, &self.path)?;
                Ok(conn)
            }
        }
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < READERS_KEPT {
            idle.push(conn);
        }
    }
}

/// Why a read-only file or directory is refused.
const READ_ONLY: &str = "the file or its directory is read-only";

/// Why a database file could not be opened, in one line for the person starting the
/// server (SQLite's own message repeats the path and its error code).
fn open_reason(e: &rusqlite::Error) -> String {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::CannotOpen) => {
            "cannot open or create the file (does its directory exist, and may this user write there?)".into()
        }
        Some(ErrorCode::NotADatabase) => "the file is not a database (not SQLite, or damaged)".into(),
        Some(ErrorCode::DatabaseCorrupt) => "the database is damaged".into(),
        Some(ErrorCode::ReadOnly) => READ_ONLY.into(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            "the database is locked by another process".into()
        }
        Some(ErrorCode::PermissionDenied) => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Opens `path` read-write (plus `extra` flags), without touching its contents.
fn connect(path: &Path, extra: OpenFlags) -> Result<Connection, StoreError> {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | extra,
    )
    .map_err(|source| StoreError::Open {
        path: path.to_owned(),
        reason: open_reason(&source),
    })
}

/// The settings every connection runs with. Switching to WAL writes the file's header, so
/// this comes after [`schema::check_owner`].
fn configure(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let open_err = |source: rusqlite::Error| StoreError::Open {
        path: path.to_owned(),
        reason: open_reason(&source),
    };
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(open_err)?;
    // FULL: a commit is on disk before it is acknowledged, even across power loss. Group
    // commit keeps the cost to one fsync per batch.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(open_err)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(open_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(open_err)?;
    Ok(())
}

fn user_from_row(r: &Row<'_>) -> rusqlite::Result<User> {
    let name: String = r.get(1)?;
    Ok(User {
        id: UserId(r.get(0)?),
        username: parse_stored(&name, Username::parse)?,
    })
}

/// Columns: id, sender name, receiver name, text, created_at, client_id.
fn message_from_row(r: &Row<'_>) -> rusqlite::Result<Message> {
    StoredMessage {
        id: r.get(0)?,
        sender: r.get(1)?,
        receiver: r.get(2)?,
        text: r.get(3)?,
        created_ms: r.get(4)?,
        client_id: r.get(5)?,
    }
    .into_message()
    .map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// Values were validated before they were stored; one that no longer parses means the file
/// was edited by hand, which is reported as a database error rather than a panic.
fn parse_stored<T>(
    s: &str,
    parse: impl FnOnce(&str) -> Result<T, natter_shared::ValidationError>,
) -> rusqlite::Result<T> {
    parse(s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn newest_id_in(c: &Connection) -> rusqlite::Result<MessageId> {
    c.prepare_cached("SELECT COALESCE(MAX(id), 0) FROM messages")?
        .query_row([], |r| r.get(0))
        .map(MessageId)
}
