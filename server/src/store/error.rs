//! [`StoreError`]: every way a storage call fails, for both backends. Never the client's
//! fault; `crate::error::ServerError` maps it to a status and wire code.

use std::path::PathBuf;

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
