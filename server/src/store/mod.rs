//! The store: the only code that writes SQL.
//!
//! One SQLite file in WAL mode. All writes go through a single writer thread
//! (`writer`) that group-commits whatever has queued up: many concurrent sends share one
//! transaction and one fsync, and each caller is answered only after that commit. Reads use
//! a small pool of separate connections, which WAL lets run beside the writer.
//!
//! The writer calls an `on_commit` callback with the messages of each committed batch, in id
//! order, before answering the senders. That callback is the whole interface between storage
//! and fan-out, so a different store (PostgreSQL) or bus (Redis) can replace either side.
//!
//! Layout: `writer` (the group-committing thread), `schema` (whose file this is,
//! migrations), `file` (the lock beside the database, "is the file still at its path"),
//! `health` (whether writes can commit now; read through [`Store::condition`]).

mod file;
mod health;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use natter_shared::protocol::SendMessage;
use natter_shared::{ClientId, Message, MessageId, Timestamp, Username};
use rusqlite::{Connection, MAIN_DB, OpenFlags, OptionalExtension, Row, params};
use tokio::sync::{mpsc, oneshot};

pub use health::Condition;
pub use writer::OnCommit;
use writer::Write;

/// Writes that may wait for the writer before senders feel backpressure.
const WRITE_QUEUE: usize = 8192;

/// Read connections kept open for reuse.
const READERS_KEPT: usize = 8;

/// A storage failure. Never the client's fault.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The file could not be opened or is not a natter database.
    #[error("cannot open database {path}: {reason}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why, in words for the person starting the server.
        reason: String,
    },
    /// Another natter-server holds the database's lock file. Two servers on one file would
    /// each fan out only their own commits, so clients of one never see the other's.
    #[error("cannot open database {path}: another natter-server is using it ({holder})")]
    InUse {
        /// The database file.
        path: PathBuf,
        /// "pid N", as the holder wrote it into the lock file.
        holder: String,
    },
    /// The lock file beside the database could not be created or locked.
    #[error("cannot create or lock {path} (is its directory read-only?)")]
    Lock {
        /// `<db>.lock`.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file was written by a newer natter-server.
    #[error(
        "database {path} has schema version {found}, newer than this server's {known}; upgrade natter-server"
    )]
    TooNew {
        /// The file.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
        /// Ours.
        known: usize,
    },
    /// The disk holding the database (or its page limit) is full; nothing in this write was
    /// stored. The writer logs the cause once.
    #[error("database is full")]
    Full,
    /// The database cannot be written (its file deleted or replaced, an I/O error); nothing
    /// in this write was stored. The writer logs the cause once.
    #[error("database cannot be written")]
    Unavailable,
    /// The batch this write was in failed to commit; nothing in it was stored.
    #[error("commit failed: {0}")]
    CommitFailed(String),
    /// The writer thread is gone (shutting down).
    #[error("store is closed")]
    Closed,
    /// A blocking read task failed.
    #[error("read task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// A user's row id. Never leaves the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserId(pub i64);

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Row id.
    pub id: UserId,
    /// Name as registered.
    pub username: Username,
}

/// A user with the password hash, for login.
#[derive(Debug, Clone)]
pub struct UserRecord {
    /// Who.
    pub user: User,
    /// argon2 PHC string.
    pub password_hash: String,
}

/// What happened to a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Stored now (and already handed to `on_commit`).
    Stored(Message),
    /// This sender used this client_id before: the earlier message, nothing new stored.
    Duplicate(Message),
    /// The receiver does not exist; nothing stored.
    UnknownReceiver(String),
}

/// What happened to a registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// Created, with its first token.
    Created(User),
    /// The name (ignoring case) exists.
    Taken,
}

/// Which slice of the visible history to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Only ids greater than this.
    pub after: Option<MessageId>,
    /// Only ids less than this.
    pub before: Option<MessageId>,
    /// At most this many; with no `after`, the newest ones.
    pub limit: usize,
}

/// Handle to the database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    writes: mpsc::Sender<Write>,
    readers: Arc<ReaderPool>,
    file: Arc<file::DbFile>,
    health: Arc<health::Health>,
}

struct ReaderPool {
    path: PathBuf,
    // A std mutex: held only to pop or push a connection, never across an await.
    idle: Mutex<Vec<Connection>>,
}

impl Store {
    /// Opens (creating if needed) and migrates the database, and starts the writer thread.
    /// Returns the store and the writer's join handle: once every `Store` clone is dropped the
    /// writer finishes what is queued and the handle completes. `max_page_count` is for
    /// tests (SQLite's page limit, to make the database full on purpose); pass `None`.
    pub fn open(
        path: &Path,
        max_page_count: Option<u32>,
        on_commit: OnCommit,
    ) -> Result<(Store, std::thread::JoinHandle<()>), StoreError> {
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
        let health = Arc::new(health::Health::default());
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let handle = writer::spawn(
            writer::Writer {
                conn,
                lock,
                file: Arc::clone(&file),
                health: Arc::clone(&health),
                on_commit,
            },
            rx,
        );
        let readers = Arc::new(ReaderPool {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
        });
        Ok((
            Store {
                writes: tx,
                readers,
                file,
                health,
            },
            handle,
        ))
    }

    /// Whether writes can commit now, for `/readyz`: what the last batch found, except that
    /// a file deleted (or back) since is noticed here at once, with one `stat`, rather than
    /// at the next write.
    pub fn condition(&self) -> Condition {
        let now = self.health.get();
        match now {
            Condition::Writable | Condition::Gone => {
                let seen = if self.file.is_in_place() {
                    Condition::Writable
                } else {
                    Condition::Gone
                };
                if seen != now {
                    self.health.set(seen, "seen by the readiness check");
                }
                seen
            }
            Condition::Full | Condition::Failing => now,
        }
    }

    /// Stores a message from `sender` (whose right to send it is already checked).
    pub async fn send(
        &self,
        sender: User,
        message: SendMessage,
    ) -> Result<SendOutcome, StoreError> {
        let committed = self.send_pipelined(sender, message).await?;
        committed.await.map_err(|_| StoreError::Closed)?
    }

    /// Hands a send to the writer without waiting for the commit: the caller awaits the
    /// returned receiver later, so one connection can have several sends in flight.
    pub async fn send_pipelined(
        &self,
        sender: User,
        message: SendMessage,
    ) -> Result<oneshot::Receiver<Result<SendOutcome, StoreError>>, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.write(Write::Message {
            sender,
            message,
            reply,
        })
        .await?;
        Ok(rx)
    }

    /// Creates a user with a first token (both hashed by the caller).
    pub async fn register(
        &self,
        username: Username,
        password_hash: String,
        token_hash: [u8; 32],
    ) -> Result<RegisterOutcome, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.write(Write::Register {
            username,
            password_hash,
            token_hash,
            reply,
        })
        .await?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Adds a token for an existing user.
    pub async fn add_token(&self, user: UserId, token_hash: [u8; 32]) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.write(Write::AddToken {
            user,
            token_hash,
            reply,
        })
        .await?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Forgets a token (logout); removing one that is not there is no error.
    pub async fn remove_token(&self, token_hash: [u8; 32]) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.write(Write::RemoveToken { token_hash, reply }).await?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn write(&self, w: Write) -> Result<(), StoreError> {
        self.writes.send(w).await.map_err(|_| StoreError::Closed)
    }

    /// The user with this name, ignoring case.
    pub async fn user_by_name(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
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
    pub async fn user_by_token(&self, token_hash: [u8; 32]) -> Result<Option<User>, StoreError> {
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
    pub async fn usernames(&self) -> Result<Vec<Username>, StoreError> {
        self.read(|c| {
            let mut stmt =
                c.prepare_cached("SELECT id, username FROM users ORDER BY username_key")?;
            let rows = stmt.query_map([], user_from_row)?;
            rows.map(|r| r.map(|u| u.username)).collect()
        })
        .await
    }

    /// The messages `viewer` may see in the slice `q`, ascending by id.
    pub async fn visible_messages(
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
    pub fn newest_message_id(&self) -> Result<MessageId, StoreError> {
        let conn = self.readers.take()?;
        let newest = newest_id_in(&conn);
        self.readers.give_back(conn);
        Ok(newest?)
    }

    /// [`newest_message_id`](Self::newest_message_id), off the async threads.
    pub async fn newest_id(&self) -> Result<MessageId, StoreError> {
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
    let sender: String = r.get(1)?;
    let receiver: Option<String> = r.get(2)?;
    let client_id: Option<String> = r.get(5)?;
    Ok(Message {
        id: MessageId(r.get(0)?),
        sender_username: parse_stored(&sender, Username::parse)?,
        receiver_username: receiver
            .as_deref()
            .map(|n| parse_stored(n, Username::parse))
            .transpose()?,
        text: r.get(3)?,
        created_at: Timestamp::from_unix_millis(r.get(4)?),
        client_id: client_id
            .as_deref()
            .map(|c| parse_stored(c, ClientId::parse))
            .transpose()?,
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
