//! A PostgreSQL database of the test's own: created on the server at 127.0.0.1:5432 (user
//! `postgres`, trust auth; `NATTER_TEST_POSTGRES_URL=postgres://USER@HOST:PORT` names
//! another), dropped at the end, panics included, touching no other database. Without a
//! PostgreSQL, [`TestDb::create`] says so in one line and the test passes, unless
//! `NATTER_REQUIRE_POSTGRES` is set (`.ci/run` sets it), where that is a failure.
//!
//! The database's name and its create and drop statements are natter-testkit's
//! ([`TestDatabase`], the one copy the client's tests and the bench use too); here they run
//! over tokio-postgres, as every query of these tests does, so the server's tests need no
//! `psql`.

use std::time::Duration;

use natter_testkit::ServiceError;
use natter_testkit::pg::{Runner, TestDatabase};

use super::{TestServer, WAIT};

/// The PostgreSQL server the tests use, without a database name.
pub fn pg_root() -> String {
    natter_testkit::pg::root_from_env("NATTER_TEST_POSTGRES_URL")
}

/// Runs `sql` on database `db` over a connection of its own, on a runtime and thread of its
/// own (so it works from `Drop` and from inside a test's runtime alike).
pub fn run_sql(db: &str, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
    run_sql_at(&format!("{}/{db}", pg_root()), sql)
}

/// [`run_sql`] on the database at `url`.
fn run_sql_at(url: &str, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
    let url = url.to_owned();
    let sql = sql.to_owned();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut config: tokio_postgres::Config = url.parse().map_err(|e| format!("{e}"))?;
            config.connect_timeout(Duration::from_secs(5));
            let (client, conn) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| format!("{e}"))?;
            tokio::spawn(conn);
            let messages = tokio::time::timeout(WAIT, client.simple_query(&sql))
                .await
                .map_err(|_| "query timed out".to_owned())?
                .map_err(|e| format!("{e}: {:?}", e.as_db_error().map(|d| d.message())))?;
            Ok(messages
                .into_iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => {
                        Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
                    }
                    _ => None,
                })
                .collect())
        })
    })
    .join()
    .unwrap()
}

/// A database of this test's own, dropped (its connections too) when this goes.
pub struct TestDb {
    db: TestDatabase,
}

impl TestDb {
    /// A fresh, empty database; `None` (after one line saying why) when there is no
    /// PostgreSQL to run on and this is not CI.
    pub fn create() -> Option<TestDb> {
        let run: Runner =
            Box::new(|url, sql| run_sql_at(url, sql).map(drop).map_err(ServiceError::Failed));
        match TestDatabase::create_with(&pg_root(), "natter_test", run) {
            Ok(db) => Some(TestDb { db }),
            // .ci/run sets it (as it does NATTER_REQUIRE_NGINX), so CI cannot skip these.
            Err(e) if std::env::var_os("NATTER_REQUIRE_POSTGRES").is_some() => {
                panic!(
                    "NATTER_REQUIRE_POSTGRES is set but there is no PostgreSQL at {}: {e}",
                    pg_root()
                )
            }
            Err(e) => {
                eprintln!(
                    "skipped: no PostgreSQL at {} ({e}); install postgresql or set NATTER_TEST_POSTGRES_URL",
                    pg_root()
                );
                None
            }
        }
    }

    pub fn name(&self) -> &str {
        self.db.name()
    }

    pub fn url(&self) -> String {
        self.db.url()
    }

    /// Rows of `sql` run in this database, as text.
    pub fn query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        run_sql(self.name(), sql).unwrap()
    }

    /// Closes every connection to this database (only this one) and, with `allow` false,
    /// refuses new ones, as a database that went away would; `allow` true lets them in again.
    pub fn set_reachable(&self, allow: bool) {
        run_sql(
            "postgres",
            &format!(
                "ALTER DATABASE {} ALLOW_CONNECTIONS {allow}; \
                 SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{}' AND pid <> pg_backend_pid();",
                self.name(),
                self.name()
            ),
        )
        .unwrap();
    }

    /// A server on this database, with extra flags.
    pub fn server(&self, args: &[&str]) -> TestServer {
        // The common harness passes a SQLite path first; the later --db wins.
        let url = self.url();
        let mut all = vec!["--db", url.as_str()];
        all.extend_from_slice(args);
        TestServer::start_plain(&all)
    }
}

/// `let db = test_db!();` — or the test ends here, skipped. A test that makes its own
/// database picks its backend itself, so it runs in the default (`sqlite`) pass only: in
/// the `postgres` and `cluster` passes it would only run again as it is.
#[macro_export]
macro_rules! test_db {
    () => {{
        $crate::only_on!(Sqlite; "it makes its own PostgreSQL database (runs in the default pass)");
        match $crate::common::pg::TestDb::create() {
            Some(db) => db,
            None => return,
        }
    }};
}
