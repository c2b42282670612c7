//! Storage faults: which SQLite errors mean the disk is full or the file cannot be written
//! (a [`Condition`] for the health flag), what a failed write or batch is answered, and the
//! cause the writer logs.

use super::Applied;
use crate::store::StoreError;
use crate::store::health::Condition;

/// Why a batch did not commit.
pub(super) struct BatchFailure {
    /// The storage fault, if it was one (else a bug, answered as a plain commit failure).
    pub(super) condition: Option<Condition>,
    /// For the log.
    pub(super) cause: String,
}

impl BatchFailure {
    pub(super) fn sqlite(e: &rusqlite::Error) -> BatchFailure {
        BatchFailure {
            condition: condition_of(e),
            cause: e.to_string(),
        }
    }

    /// What each write of the failed batch is answered.
    pub(super) fn error(&self) -> StoreError {
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
    pub(super) fn classify(&mut self) -> Option<(Condition, String)> {
        match self {
            Applied::Message(_, r) => classify(r),
            Applied::Register(_, r) => classify(r),
            Applied::Token(_, r) => classify(r),
        }
    }
}
