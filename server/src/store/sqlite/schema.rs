//! Whose file this is, and bringing it to the current schema.
//!
//! natter marks its databases with `PRAGMA application_id` = [`APPLICATION_ID`], so a
//! mistyped `--db` pointing at some other program's SQLite file is refused before anything
//! in it changes, instead of being switched to WAL and migrated into a natter database.
//! Migrations live in `migrations/NNNN_*.sql`; `PRAGMA user_version` records how many ran.

use std::path::Path;

use rusqlite::Connection;

use super::{StoreError, open_reason};

/// Migrations in order; `PRAGMA user_version` records how many have run.
// Kept at `store/migrations/`, where they always were (tests read them from there).
pub(super) const MIGRATIONS: &[&str] = &[include_str!("../migrations/0001_init.sql")];

/// natter's `PRAGMA application_id`: the ASCII bytes "natt". Written into every database
/// at start (the header's bytes 68..72), checked before anything else is read.
pub(super) const APPLICATION_ID: i32 = 0x6E61_7474;

/// The tables of schema 1, the only schema natter wrote before it stamped its files.
const SCHEMA_1_TABLES: [&str; 3] = ["messages", "tokens", "users"];

/// Tables named in a refusal, at most.
const TABLES_SHOWN: usize = 5;

/// Refuses a file that is not natter's: another application's id, or (no id) any tables
/// that are not natter's schema 1. Reads only, so a refused file is left as it was. An empty
/// file is a new database.
pub(super) fn check_owner(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let open_err = |source: rusqlite::Error| StoreError::Open {
        path: path.to_owned(),
        reason: open_reason(&source),
    };
    let not_ours = |why: String| StoreError::Open {
        path: path.to_owned(),
        reason: format!("it is not a natter database ({why})"),
    };
    // The first read of the file: one that is not SQLite at all fails here.
    let id: i32 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(open_err)?;
    if id == APPLICATION_ID {
        return Ok(());
    }
    if id != 0 {
        return Err(not_ours(format!("its application_id is {id:#x}")));
    }
    let tables: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master \
             WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(open_err)?;
    if tables.is_empty() {
        return Ok(());
    }
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(open_err)?;
    // natter databases made before natter stamped its files have id 0 but schema 1: they
    // are adopted (migrate stamps them), so upgrading natter-server keeps working.
    if version == 1 && tables == SCHEMA_1_TABLES {
        return Ok(());
    }
    let mut shown = tables
        .iter()
        .take(TABLES_SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if tables.len() > TABLES_SHOWN {
        shown.push_str(", …");
    }
    Err(not_ours(format!("it has tables {shown}")))
}

/// Runs the migrations not yet applied, then stamps [`APPLICATION_ID`]. The stamp is a real
/// committed write on every start (one page, one fsync): it proves the file, its WAL and
/// its directory writable before the server listens, instead of failing the first send.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let open_err = |source: rusqlite::Error| StoreError::Open {
        path: path.to_owned(),
        reason: open_reason(&source),
    };
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(open_err)?;
    let applied = usize::try_from(version).unwrap_or(usize::MAX);
    if applied > MIGRATIONS.len() {
        return Err(StoreError::TooNew {
            db: path.display().to_string(),
            found: version,
            known: MIGRATIONS.len(),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction().map_err(open_err)?;
        tx.execute_batch(sql).map_err(open_err)?;
        tx.pragma_update(None, "user_version", i + 1)
            .map_err(open_err)?;
        tx.commit().map_err(open_err)?;
        tracing::info!(version = i + 1, "applied schema migration");
    }
    conn.pragma_update(None, "application_id", APPLICATION_ID)
        .map_err(open_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn check(setup: &str) -> Result<(), StoreError> {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(setup).unwrap();
        check_owner(&c, Path::new("x.db"))
    }

    /// An empty database is a new one.
    #[test]
    fn empty_file_is_accepted() {
        check("").unwrap();
    }

    /// natter's schema 1 without the stamp (made before it) is accepted.
    #[test]
    fn unstamped_schema_1_is_accepted() {
        check(&format!("{} PRAGMA user_version = 1;", MIGRATIONS[0])).unwrap();
    }

    /// Schema 1's tables without its user_version are not taken for natter's.
    #[test]
    fn schema_1_tables_at_version_0_are_refused() {
        assert!(check(MIGRATIONS[0]).is_err());
    }

    /// Another program's tables are refused, and the message names them.
    #[test]
    fn foreign_tables_are_refused_by_name() {
        let e = check("CREATE TABLE notes (body TEXT);").unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot open database x.db: it is not a natter database (it has tables notes)"
        );
    }
}
