//! Reading a whole natter database out, for `migrate`: one read transaction, so every row
//! comes from one snapshot, under the database's lock, so no server writes to the file (or
//! starts on it) while it is copied.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::file::DbLock;
use super::{open_reason, schema};
use crate::store::StoreError;
use crate::store::migrate::{MessageRow, TokenRow, UserRow};

/// An open source database, inside its read transaction.
pub(in crate::store) struct Source {
    conn: Connection,
    /// `None` when the lock file cannot be created (a read-only copy in a read-only
    /// directory, which no server can be writing to either).
    _lock: Option<DbLock>,
}

impl Source {
    /// Opens `path` read-only (creating nothing, changing nothing) and checks that it is a
    /// natter database of the current schema.
    pub(in crate::store) fn open(path: &Path) -> Result<Source, StoreError> {
        let open_err = |source: rusqlite::Error| StoreError::Open {
            path: path.to_owned(),
            reason: open_reason(&source),
        };
        // A copy of a file a server is still writing would miss what it writes next.
        let lock = match DbLock::acquire(path) {
            Ok(lock) => Some(lock),
            Err(e @ StoreError::InUse { .. }) => return Err(e),
            Err(_) => None,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        schema::check_owner(&conn, path)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(open_err)?;
        if usize::try_from(version).ok() != Some(schema::MIGRATIONS.len()) {
            return Err(StoreError::Open {
                path: path.to_owned(),
                reason: format!(
                    "it has schema version {version}, not {} (an empty file, or start this \
                     natter-server on it once to migrate it)",
                    schema::MIGRATIONS.len()
                ),
            });
        }
        conn.execute_batch("BEGIN").map_err(open_err)?;
        Ok(Source { conn, _lock: lock })
    }

    pub(in crate::store) fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, username, username_key, password_hash, created_at FROM users ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(UserRow {
                id: r.get(0)?,
                username: r.get(1)?,
                username_key: r.get(2)?,
                password_hash: r.get(3)?,
                created_at: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub(in crate::store) fn tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT token_hash, user_id, created_at FROM tokens ORDER BY user_id")?;
        let rows = stmt.query_map([], |r| {
            Ok(TokenRow {
                token_hash: r.get(0)?,
                user_id: r.get(1)?,
                created_at: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Up to `limit` messages with ids above `after`, by id.
    pub(in crate::store) fn messages_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<MessageRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, sender_id, receiver_id, text, created_at, client_id FROM messages \
             WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map([after, limit], |r| {
            Ok(MessageRow {
                id: r.get(0)?,
                sender_id: r.get(1)?,
                receiver_id: r.get(2)?,
                text: r.get(3)?,
                created_at: r.get(4)?,
                client_id: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
