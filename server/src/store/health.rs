//! Whether the database can be written right now: one flag, owned by the store.
//!
//! The writer sets it after every batch (and [`super::Store::condition`] when it notices
//! the file gone or back); `/readyz` reads it. Each change is logged once, with its cause,
//! so a full disk is one log line rather than one per batch.

use std::sync::atomic::{AtomicU8, Ordering};

/// What the last write (or file check) found.
/// Ordered by severity: a batch reports the worst its writes met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Condition {
    /// Writes commit.
    Writable,
    /// The disk (or SQLite's page limit) is full: writes are refused until one fits again.
    Full,
    /// The database file is no longer at its path (deleted, moved or replaced): writes are
    /// refused until it is back.
    Gone,
    /// SQLite reported an I/O error or a read-only file: writes are refused until one
    /// commits again.
    Failing,
}

impl Condition {
    fn from_u8(v: u8) -> Condition {
        match v {
            1 => Condition::Full,
            2 => Condition::Gone,
            3 => Condition::Failing,
            _ => Condition::Writable,
        }
    }

    /// In words, for the log.
    fn describe(self) -> &'static str {
        match self {
            Condition::Writable => "the database is writable",
            Condition::Full => "the database is full; refusing writes until one fits",
            Condition::Gone => {
                "the database file is no longer at its path (deleted, moved or replaced); \
                 refusing writes until it is back"
            }
            Condition::Failing => "the database cannot be written; refusing writes",
        }
    }
}

/// The flag. Relaxed ordering is enough: it publishes no other data, and a probe that
/// reads a value one batch old is as good as a probe a moment earlier.
#[derive(Debug, Default)]
pub(super) struct Health(AtomicU8);

impl Health {
    /// The current condition.
    pub(super) fn get(&self) -> Condition {
        Condition::from_u8(self.0.load(Ordering::Relaxed))
    }

    /// Records `now`; on a change, logs it once with `cause`.
    pub(super) fn set(&self, now: Condition, cause: &str) {
        let before = Condition::from_u8(self.0.swap(now as u8, Ordering::Relaxed));
        if before == now {
            return;
        }
        if now == Condition::Writable {
            tracing::info!(was = ?before, "{}", now.describe());
        } else {
            tracing::error!(cause, "{}", now.describe());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every condition survives the round trip through the atomic.
    #[test]
    fn conditions_round_trip() {
        let h = Health::default();
        assert_eq!(h.get(), Condition::Writable);
        for c in [
            Condition::Full,
            Condition::Gone,
            Condition::Failing,
            Condition::Writable,
        ] {
            h.set(c, "test");
            assert_eq!(h.get(), c);
        }
    }
}
