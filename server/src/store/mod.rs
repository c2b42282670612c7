//! The store: the only code that writes SQL, behind one handle, [`Store`], whatever the
//! backend.
//!
//! Two backends, chosen once at start by [`DbTarget`]: one SQLite file (`sqlite`, the
//! default) or a PostgreSQL database (`postgres`). Both have the same shape: every write goes
//! to one writer (a thread for SQLite, a task for PostgreSQL) that group-commits whatever has
//! queued up, answering each caller only after that commit; reads use a small pool of
//! separate connections. The write queue ([`Write`]), the health flag and the write methods
//! live here, once; each backend brings its writer and its reads.
//!
//! The writer hands the messages of each committed batch, in id order, to a [`CommitSink`]
//! before answering the senders. That trait is the whole interface between storage and
//! fan-out: the bus's feed (`crate::bus::Feed`) implements it, and the store never learns
//! whether a hub, a Redis channel or both are behind it.
//!
//! Layout: `target` (what `--db` names: a file or a `postgres://` URL), `sqlite` (the file,
//! its writer thread, its migrations, its lock), `postgres` (the database, its writer task,
//! its migrations), `migrate` (copying a SQLite database into PostgreSQL), `health` (whether
//! writes can commit now; read through [`Store::condition`]).

mod health;
mod migrate;
mod postgres;
mod sqlite;
mod target;

use std::path::PathBuf;
use std::sync::Arc;

use natter_shared::protocol::SendMessage;
use natter_shared::{ClientId, Message, MessageId, Timestamp, Username};
use tokio::sync::{mpsc, oneshot};

pub use health::Condition;
pub use migrate::{Copied, sqlite_to_postgres};
pub use target::{DbTarget, PgTarget, TargetError};

/// Writes that may wait for the writer before senders feel backpressure.
const WRITE_QUEUE: usize = 8192;

/// Most writes in one transaction: bounds how long the first of them waits.
const MAX_BATCH: usize = 2048;

/// Where committed messages go: what the writers tell fan-out, and ask of it. Called on the
/// writer (a thread or a task), so no method may block.
pub trait CommitSink: Send + Sync + 'static {
    /// The newest message in the store when it opened, before the writer starts: delivery
    /// begins after it.
    fn stored_up_to(&self, id: MessageId);
    /// The newest id already delivered to this instance's connections. A PostgreSQL writer
    /// that finds the counter past it reads the messages in between and hands them to
    /// [`found`](Self::found) first.
    fn delivered(&self) -> MessageId;
    /// Messages committed earlier, in id order, found only now: by another instance on the
    /// same database, or by one of this writer's batches whose COMMIT answer was lost.
    fn found(&self, messages: &[Message]);
    /// A batch's new messages, in id order, just committed by this writer, before its senders
    /// are answered.
    fn committed(&self, messages: &[Message]);
}

/// The writers' handle on the sink.
pub type OnCommit = Arc<dyn CommitSink>;

/// A storage failure. Never the client's fault.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite said no. The cause is the source, not in the message, so a chain prints it once.
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL said no (a statement failed; its connection is fine). The cause is the
    /// source, as above.
    #[error("database error")]
    Postgres(#[from] tokio_postgres::Error),
    /// The file could not be opened or is not a natter database.
    #[error("cannot open database {path}: {reason}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why, in words for the person starting the server.
        reason: String,
    },
    /// The PostgreSQL database could not be reached or used at start.
    #[error("cannot use database {target}: {reason}")]
    Connect {
        /// The URL, without its password.
        target: String,
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
    /// The database was written by a newer natter-server.
    #[error(
        "database {db} has schema version {found}, newer than this server's {known}; upgrade natter-server"
    )]
    TooNew {
        /// The file, or the URL without its password.
        db: String,
        /// Its schema version.
        found: i64,
        /// Ours.
        known: usize,
    },
    /// The disk holding the database (or its page limit) is full; nothing in this write was
    /// stored. The writer logs the cause once.
    #[error("database is full")]
    Full,
    /// The database cannot be written (its file deleted or replaced, an I/O error, PostgreSQL
    /// out of reach); nothing in this write was stored. The writer logs the cause once.
    #[error("database cannot be written")]
    Unavailable,
    /// The batch this write was in failed to commit; nothing in it was stored.
    #[error("commit failed: {0}")]
    CommitFailed(String),
    /// A stored value no longer passes validation (a row edited by hand).
    #[error("stored value is invalid: {0}")]
    BadRow(String),
    /// The writer is gone (shutting down).
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
    /// Stored now (and already handed to the [`CommitSink`]).
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

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// One queued write, for whichever writer the store has.
pub(crate) enum Write {
    Message {
        sender: User,
        message: SendMessage,
        reply: Reply<SendOutcome>,
    },
    Register {
        username: Username,
        password_hash: String,
        token_hash: [u8; 32],
        reply: Reply<RegisterOutcome>,
    },
    AddToken {
        user: UserId,
        token_hash: [u8; 32],
        reply: Reply<()>,
    },
    RemoveToken {
        token_hash: [u8; 32],
        reply: Reply<()>,
    },
}

impl Write {
    /// Answers this write's caller with `e` (a caller that stopped waiting is no error).
    fn fail(self, e: StoreError) {
        match self {
            Write::Message { reply, .. } => drop(reply.send(Err(e))),
            Write::Register { reply, .. } => drop(reply.send(Err(e))),
            Write::AddToken { reply, .. } | Write::RemoveToken { reply, .. } => {
                drop(reply.send(Err(e)))
            }
        }
    }
}

/// The writer's end: once every [`Store`] clone is dropped, the writer finishes what is
/// queued and this completes.
pub struct WriterHandle(WriterJoin);

enum WriterJoin {
    Thread(std::thread::JoinHandle<()>),
    Task(tokio::task::JoinHandle<()>),
}

impl WriterHandle {
    /// Waits for the writer to commit what was queued and stop.
    pub async fn finished(self) {
        match self.0 {
            WriterJoin::Thread(t) => drop(tokio::task::spawn_blocking(move || t.join()).await),
            WriterJoin::Task(t) => drop(t.await),
        }
    }
}

/// Handle to the database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    writes: mpsc::Sender<Write>,
    health: Arc<health::Health>,
    reads: Reads,
}

/// Each backend's read side (and, for SQLite, the file check).
#[derive(Clone)]
enum Reads {
    Sqlite(sqlite::Reads),
    Postgres(postgres::Reads),
}

/// A message's columns as both backends store them (the time as Unix milliseconds), read
/// back: [`StoredMessage::into_message`] is the one place they become a [`Message`] again.
pub(crate) struct StoredMessage {
    pub id: i64,
    pub sender: String,
    pub receiver: Option<String>,
    pub text: String,
    pub created_ms: i64,
    pub client_id: Option<String>,
}

impl StoredMessage {
    /// The message. Values were validated before they were stored, so one that no longer
    /// parses means a row edited by hand, which each backend reports as a bad row.
    pub fn into_message(self) -> Result<Message, natter_shared::ValidationError> {
        Ok(Message {
            id: MessageId(self.id),
            sender_username: Username::parse(&self.sender)?,
            receiver_username: self.receiver.as_deref().map(Username::parse).transpose()?,
            text: self.text,
            created_at: Timestamp::from_unix_millis(self.created_ms),
            client_id: self.client_id.as_deref().map(ClientId::parse).transpose()?,
        })
    }
}

/// Faults a test can ask the store for; [`Default`] is none.
#[derive(Debug, Clone, Copy, Default)]
pub struct TestHooks {
    /// SQLite's `max_page_count`, so a test can fill the database.
    pub max_page_count: Option<u32>,
    /// PostgreSQL: the first this many batches that commit a new message are answered as if
    /// the COMMIT's
    /// reply was lost (a cut connection, a timeout): 503 to their senders, nothing
    /// published, the connection dropped, so a test can see the gap filled.
    pub lost_commit_answers: u32,
    /// PostgreSQL: the process aborts (as if killed with SIGKILL) right after the first
    /// batch that stores a message commits, before anything is delivered, published or
    /// answered, so a test can see the other instances fill it from the database.
    pub die_after_commit: bool,
}

impl Store {
    /// Opens (creating if needed) and migrates the database, and starts its writer. Returns
    /// the store and the writer's handle. `hooks` are for tests; pass the default. With
    /// PostgreSQL this must be called inside a tokio runtime, which the writer task then
    /// runs on.
    pub fn open(
        target: &DbTarget,
        hooks: TestHooks,
        on_commit: OnCommit,
    ) -> Result<(Store, WriterHandle), StoreError> {
        let max_page_count = hooks.max_page_count;
        let health = Arc::new(health::Health::default());
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let (reads, writer) = match target {
            DbTarget::Sqlite(path) => {
                let (reads, thread) =
                    sqlite::open(path, max_page_count, on_commit, rx, Arc::clone(&health))?;
                (Reads::Sqlite(reads), WriterJoin::Thread(thread))
            }
            DbTarget::Postgres(pg) => {
                // Refused at the command line too; this is for `Config` built in code.
                if max_page_count.is_some() {
                    return Err(StoreError::Connect {
                        target: pg.to_string(),
                        reason: "a page limit applies to SQLite files only".into(),
                    });
                }
                let (reads, task) = postgres::open(pg, on_commit, rx, Arc::clone(&health), hooks)?;
                (Reads::Postgres(reads), WriterJoin::Task(task))
            }
        };
        Ok((
            Store {
                writes: tx,
                health,
                reads,
            },
            WriterHandle(writer),
        ))
    }

    /// Whether writes can commit now, for `/readyz`: what the last batch (or, with
    /// PostgreSQL, the writer's last probe) found; a SQLite file deleted (or back) since is
    /// noticed here at once.
    pub fn condition(&self) -> Condition {
        match &self.reads {
            Reads::Sqlite(r) => r.condition(&self.health),
            Reads::Postgres(_) => self.health.get(),
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
        match &self.reads {
            Reads::Sqlite(r) => r.user_by_name(name).await,
            Reads::Postgres(r) => r.user_by_name(name).await,
        }
    }

    /// The user a token hash belongs to.
    pub async fn user_by_token(&self, token_hash: [u8; 32]) -> Result<Option<User>, StoreError> {
        match &self.reads {
            Reads::Sqlite(r) => r.user_by_token(token_hash).await,
            Reads::Postgres(r) => r.user_by_token(token_hash).await,
        }
    }

    /// Every username, alphabetically (ignoring case).
    pub async fn usernames(&self) -> Result<Vec<Username>, StoreError> {
        match &self.reads {
            Reads::Sqlite(r) => r.usernames().await,
            Reads::Postgres(r) => r.usernames().await,
        }
    }

    /// The messages `viewer` may see in the slice `q`, ascending by id.
    pub async fn visible_messages(
        &self,
        viewer: UserId,
        q: HistoryQuery,
    ) -> Result<Vec<Message>, StoreError> {
        match &self.reads {
            Reads::Sqlite(r) => r.visible_messages(viewer, q).await,
            Reads::Postgres(r) => r.visible_messages(viewer, q).await,
        }
    }

    /// Every message with an id in `(after, through]`, in id order: a gap in the bus's
    /// feed, filled. A SQLite store has one writer and no bus, so it never has one.
    pub async fn messages_between(
        &self,
        after: MessageId,
        through: MessageId,
    ) -> Result<Vec<Message>, StoreError> {
        match &self.reads {
            Reads::Sqlite(_) => Ok(Vec::new()),
            Reads::Postgres(r) => r.messages_between(after, through).await,
        }
    }

    /// The newest message id in the store (0 when there is none). Blocking: for start-up.
    pub fn newest_message_id(&self) -> Result<MessageId, StoreError> {
        match &self.reads {
            Reads::Sqlite(r) => r.newest_message_id(),
            Reads::Postgres(r) => r.newest_message_id(),
        }
    }

    /// [`newest_message_id`](Self::newest_message_id), off the async threads.
    pub async fn newest_id(&self) -> Result<MessageId, StoreError> {
        match &self.reads {
            Reads::Sqlite(r) => r.newest_id().await,
            Reads::Postgres(r) => r.newest_id().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(sender: &str, client_id: Option<&str>) -> StoredMessage {
        StoredMessage {
            id: 7,
            sender: sender.to_owned(),
            receiver: Some("bob".to_owned()),
            text: "hi".to_owned(),
            created_ms: 1_700_000_000_000,
            client_id: client_id.map(str::to_owned),
        }
    }

    #[test]
    fn stored_rows_become_messages_or_bad_rows() {
        let m = row("alice", Some("c-1")).into_message().unwrap();
        assert_eq!(m.id, MessageId(7));
        assert_eq!(m.receiver_username.unwrap().as_str(), "bob");
        assert_eq!(m.created_at.unix_millis(), 1_700_000_000_000);
        // A row edited by hand is an error, never a panic or a message that breaks the rules.
        assert!(row("not a name!", None).into_message().is_err());
        assert!(row("alice", Some("")).into_message().is_err());
    }
}
