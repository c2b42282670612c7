//! A PostgreSQL database of the caller's own: created with a unique name
//! ([`unique_name`](crate::unique_name): `PREFIX_PID_NANOS_SEQ`) on the server at a root
//! URL (`postgres://USER@HOST:PORT`, no database), and dropped when it goes, with
//! `DROP DATABASE IF EXISTS … WITH (FORCE)` (servers of a failed test may still be
//! connected). Only a database this created is ever dropped; an error dropping it is
//! printed, never a panic.
//!
//! The statements run through the `psql` CLI ([`TestDatabase::create`], std only), or
//! through a runner of the caller's ([`TestDatabase::create_with`]; the server's tests run
//! them over tokio-postgres): either way the naming and the create and drop statements
//! are the ones here.

use std::process::{Command, Stdio};

use crate::ServiceError;

/// The PostgreSQL the tests use unless told otherwise: 127.0.0.1:5432, user `postgres`.
pub const DEFAULT_ROOT: &str = "postgres://postgres@127.0.0.1:5432";

/// `$var` when set, else [`DEFAULT_ROOT`].
pub fn root_from_env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| DEFAULT_ROOT.to_owned())
}

/// Runs `sql` on the database at `url`: `Ok(())`, or why not.
pub type Runner = Box<dyn Fn(&str, &str) -> Result<(), ServiceError> + Send + Sync>;

/// Runs `sql` on the database at `url` through `psql` (`ON_ERROR_STOP`, unaligned, tuples
/// only): its output, one row a line with columns split by `|`, or why not.
pub fn psql(url: &str, sql: &str) -> Result<String, ServiceError> {
    let out = Command::new("psql")
        .arg(url)
        .args(["-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ServiceError::Missing(
                    "psql is not installed (apt-get install postgresql-client)".to_owned(),
                )
            } else {
                ServiceError::Failed(format!("cannot run psql: {e}"))
            }
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(ServiceError::Failed(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ))
    }
}

/// `CREATE DATABASE name`.
pub fn create_sql(name: &str) -> String {
    format!("CREATE DATABASE {name}")
}

/// `DROP DATABASE IF EXISTS name WITH (FORCE)`.
pub fn drop_sql(name: &str) -> String {
    format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")
}

/// A database of the caller's own, dropped (its connections too) when this goes.
pub struct TestDatabase {
    root: String,
    name: String,
    run: Runner,
}

impl std::fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDatabase")
            .field("root", &self.root)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TestDatabase {
    /// A fresh, empty database named `PREFIX_PID_NANOS_SEQ` on `root` (a URL without a
    /// database), through `psql`. `prefix` is lower-case letters, digits and `_`.
    pub fn create(root: &str, prefix: &str) -> Result<TestDatabase, ServiceError> {
        Self::create_with(root, prefix, Box::new(|url, sql| psql(url, sql).map(drop)))
    }

    /// [`Self::create`], with `run` running the create (and, at the end, the drop) on the
    /// maintenance database's URL instead of `psql`.
    pub fn create_with(
        root: &str,
        prefix: &str,
        run: Runner,
    ) -> Result<TestDatabase, ServiceError> {
        let plain = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
        if prefix.is_empty() || !prefix.chars().all(plain) {
            return Err(ServiceError::Failed(format!(
                "database prefix {prefix:?}: only a-z, 0-9 and _"
            )));
        }
        let root = root.trim_end_matches('/').to_owned();
        let name = crate::unique_name(prefix);
        run(&maintenance_url(&root), &create_sql(&name))?;
        Ok(TestDatabase { root, name, run })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server's URL, without a database.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// `ROOT/NAME`.
    pub fn url(&self) -> String {
        format!("{}/{}", self.root, self.name)
    }

    /// Runs `sql` in this database through `psql`: one row a line, columns split by `|`.
    pub fn psql(&self, sql: &str) -> Result<String, ServiceError> {
        psql(&self.url(), sql)
    }
}

/// The `postgres` database on `root`, where databases are created and dropped from.
fn maintenance_url(root: &str) -> String {
    format!("{root}/postgres")
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Err(e) = (self.run)(&maintenance_url(&self.root), &drop_sql(&self.name)) {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exists(name: &str) -> bool {
        let sql = format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'");
        psql(
            &maintenance_url(&root_from_env("NATTER_TEST_POSTGRES_URL")),
            &sql,
        )
        .expect("asking pg_database")
        .trim()
            == "1"
    }

    #[test]
    fn a_database_is_created_and_dropped() {
        let root = root_from_env("NATTER_TEST_POSTGRES_URL");
        let db = match TestDatabase::create(&root, "natter_testkit") {
            Ok(db) => db,
            Err(e) if std::env::var_os("NATTER_REQUIRE_POSTGRES").is_none() => {
                eprintln!("skipped: no PostgreSQL at {root} ({e})");
                return;
            }
            Err(e) => panic!("NATTER_REQUIRE_POSTGRES is set but {e}"),
        };
        let name = db.name().to_owned();
        assert!(name.starts_with("natter_testkit_"), "{name}");
        assert_eq!(db.url(), format!("{}/{name}", root.trim_end_matches('/')));
        assert!(exists(&name));
        db.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (7)")
            .expect("using it");
        assert_eq!(db.psql("SELECT x FROM t").expect("a row").trim(), "7");
        drop(db);
        assert!(!exists(&name), "{name} is still there");
    }

    #[test]
    fn a_bad_prefix_creates_nothing() {
        let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = ran.clone();
        let run: Runner = Box::new(move |_, _| {
            seen.store(true, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        });
        assert!(TestDatabase::create_with(DEFAULT_ROOT, "Bad; DROP", run).is_err());
        assert!(!ran.load(std::sync::atomic::Ordering::Relaxed));
    }

    #[test]
    fn the_runner_gets_the_create_then_the_drop() {
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = log.clone();
        let run: Runner = Box::new(move |url, sql| {
            seen.lock().expect("log").push(format!("{url} {sql}"));
            Ok(())
        });
        let db = TestDatabase::create_with("postgres://u@h:1/", "p", run).expect("created");
        let name = db.name().to_owned();
        assert_eq!(db.url(), format!("postgres://u@h:1/{name}"));
        drop(db);
        assert_eq!(
            *log.lock().expect("log"),
            [
                format!("postgres://u@h:1/postgres CREATE DATABASE {name}"),
                format!("postgres://u@h:1/postgres DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            ]
        );
    }
}
