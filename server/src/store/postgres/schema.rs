//! Whose database this is, and bringing it to the current schema, once, however many
//! servers start at the same moment.
//!
//! Migrations live in `migrations/NNNN_*.sql`; the one-row table `natter_schema` records
//! how many ran. All of it happens in one transaction holding a transaction-level advisory
//! lock ([`MIGRATION_LOCK`]): a second server starting against the same empty database waits
//! on the lock, then finds the schema current and changes nothing.

use tokio_postgres::Client;

use super::super::StoreError;

/// Migrations in order; `natter_schema.version` records how many have run.
const MIGRATIONS: &[&str] = &[include_str!("migrations/0001_init.sql")];

/// The advisory lock key migrations run under: the ASCII bytes "natt", as SQLite's
/// `application_id`. Advisory locks are per database, so servers on other databases of the
/// same PostgreSQL never wait for each other.
const MIGRATION_LOCK: i64 = 0x6E61_7474;

/// Tables named in a refusal, at most.
const TABLES_SHOWN: usize = 5;

/// Why the database cannot be used, for [`StoreError::Connect`].
pub(super) enum Refusal {
    /// PostgreSQL failed.
    Db(tokio_postgres::Error),
    /// The database has tables and none of them is `natter_schema`.
    NotOurs(String),
    /// Written by a newer natter-server.
    TooNew(i64),
}

impl From<tokio_postgres::Error> for Refusal {
    fn from(e: tokio_postgres::Error) -> Self {
        Refusal::Db(e)
    }
}

impl Refusal {
    /// The error for the person starting the server, naming the database as `shown`.
    pub(super) fn into_error(self, shown: String) -> StoreError {
        match self {
            Refusal::Db(e) => StoreError::Connect {
                target: shown,
                reason: super::reason(&e),
            },
            Refusal::NotOurs(tables) => StoreError::Connect {
                target: shown,
                reason: format!("it is not a natter database (it has tables {tables})"),
            },
            Refusal::TooNew(found) => StoreError::TooNew {
                db: shown,
                found,
                known: MIGRATIONS.len(),
            },
        }
    }
}

/// Refuses a database with somebody else's tables (in the schema `search_path` puts first),
/// then runs the migrations not yet applied.
pub(super) async fn migrate(client: &mut Client) -> Result<(), Refusal> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let ours: bool = tx
        .query_one("SELECT to_regclass('natter_schema') IS NOT NULL", &[])
        .await?
        .get(0);
    if !ours {
        let tables: Vec<String> = tx
            .query(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() ORDER BY 1",
                &[],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !tables.is_empty() {
            let mut shown = tables
                .iter()
                .take(TABLES_SHOWN)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            if tables.len() > TABLES_SHOWN {
                shown.push_str(", …");
            }
            return Err(Refusal::NotOurs(shown));
        }
        tx.batch_execute(
            "CREATE TABLE natter_schema (version INTEGER NOT NULL); \
             INSERT INTO natter_schema VALUES (0);",
        )
        .await?;
    }
    let version: i32 = tx
        .query_one("SELECT version FROM natter_schema", &[])
        .await?
        .get(0);
    let applied = usize::try_from(version).unwrap_or(usize::MAX);
    if applied > MIGRATIONS.len() {
        return Err(Refusal::TooNew(i64::from(version)));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        tx.batch_execute(sql).await?;
        let now = i32::try_from(i + 1).unwrap_or(i32::MAX);
        tx.execute("UPDATE natter_schema SET version = $1", &[&now])
            .await?;
        tracing::info!(version = i + 1, "applied schema migration");
    }
    tx.commit().await?;
    Ok(())
}
