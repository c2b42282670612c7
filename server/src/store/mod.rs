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
//! Layout: this file (the [`Store`] handle: its write methods, which queue a [`Write`], and
//! its reads, which go to the backend; the writer's handle; test hooks), `sink` (the
//! [`CommitSink`] seam), `error` ([`StoreError`]), `model` (users, outcomes, history
//! queries), `write` (the write queue's items), `stored` (a stored message's columns, read
//! back), `target` (what `--db` names: a file or a `postgres://` URL), `sqlite` (the file,
//! its writer thread, its migrations, its lock), `postgres` (the database, its writer task,
//! its migrations), `migrate` (copying a SQLite database into PostgreSQL), `health` (whether
//! writes can commit now; read through [`Store::condition`]).

mod error;
mod health;
mod migrate;
mod model;
mod postgres;
mod sink;
mod sqlite;
mod stored;
mod target;
mod write;

use std::sync::Arc;

use natter_shared::protocol::SendMessage;
use natter_shared::{Message, MessageId, Username};
use tokio::sync::{mpsc, oneshot};

pub use error::StoreError;
pub use health::Condition;
pub use migrate::{Copied, sqlite_to_postgres};
pub use model::{HistoryQuery, RegisterOutcome, SendOutcome, User, UserId, UserRecord};
pub use sink::{CommitSink, OnCommit};
pub(crate) use stored::StoredMessage;
pub use target::{DbTarget, PgTarget, TargetError};
use write::Reply;
pub(crate) use write::Write;

/// Writes that may wait for the writer before senders feel backpressure.
const WRITE_QUEUE: usize = 8192;

/// Most writes in one transaction: bounds how long the first of them waits.
const MAX_BATCH: usize = 2048;

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
