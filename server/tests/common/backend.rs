//! Which backend the server tests run on, read once from `NATTER_TEST_BACKEND`:
//!
//! - `sqlite` (the default): one process on a SQLite file in the test's temp directory;
//! - `postgres`: one process on a fresh PostgreSQL database of the test server's own;
//! - `cluster`: three processes (`--instance-name node0`…`node2`) on one fresh PostgreSQL
//!   database and one Redis bus prefix, the test's WebSockets spread over them.
//!
//! One suite, parametrised: `TestServer` starts whatever this says, and a test that is
//! about one backend only (a SQLite file's specifics, one process's output, a limit that is
//! per instance) says so with [`only_on!`](crate::only_on), which ends it on the others
//! with one line saying why. `scripts/test` runs the server suite once per backend.

use std::ffi::OsString;
use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

use super::pg::{TestDb, pg_root};
use super::redis::TestBus;

/// What the server tests run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    Cluster,
}

/// How many instances a cluster-mode test server has.
pub const CLUSTER_INSTANCES: usize = 3;

impl Backend {
    /// `NATTER_TEST_BACKEND`, read once; unset or empty is `sqlite`, anything unknown a panic
    /// (a typo must not quietly run the SQLite suite again).
    pub fn current() -> Backend {
        static CURRENT: OnceLock<Backend> = OnceLock::new();
        *CURRENT.get_or_init(|| match std::env::var("NATTER_TEST_BACKEND").as_deref() {
            Err(_) | Ok("") | Ok("sqlite") => Backend::Sqlite,
            Ok("postgres") => Backend::Postgres,
            Ok("cluster") => Backend::Cluster,
            Ok(other) => {
                panic!("NATTER_TEST_BACKEND={other:?}: expected sqlite, postgres or cluster")
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::Cluster => "cluster",
        }
    }

    /// How many server processes one test server is.
    pub fn instances(self) -> usize {
        match self {
            Backend::Sqlite | Backend::Postgres => 1,
            Backend::Cluster => CLUSTER_INSTANCES,
        }
    }

    /// What `/readyz` says about the bus when all is well.
    pub fn bus(self) -> &'static str {
        match self {
            Backend::Sqlite | Backend::Postgres => "none",
            Backend::Cluster => "redis",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `only_on!(Sqlite; "why")` or `only_on!(Sqlite, Postgres; "why")` at the top of a test:
/// on any other backend the test ends here, after one line saying why.
#[macro_export]
macro_rules! only_on {
    ($($backend:ident),+ ; $why:expr) => {
        let backend = $crate::common::backend::Backend::current();
        if ![$($crate::common::backend::Backend::$backend),+].contains(&backend) {
            eprintln!("skipped on backend {backend}: {}", $why);
            return;
        }
    };
}

/// The database (and bus) one test server runs on: nothing for SQLite (the file is in the
/// server's directory), a PostgreSQL database of its own, and for a cluster a Redis prefix
/// of its own as well. Its owner drops it after the server's processes.
pub struct Storage {
    pub backend: Backend,
    pub db: Option<TestDb>,
    pub bus: Option<TestBus>,
}

impl Storage {
    /// For the current backend. Without the PostgreSQL (or Redis) it needs, a panic saying
    /// so: `scripts/test` runs those backends only when PostgreSQL answers.
    pub fn current() -> Storage {
        Self::on(Backend::current())
    }

    /// A SQLite file, whatever the backend (for tests that pick their backend themselves).
    pub fn sqlite() -> Storage {
        Self::on(Backend::Sqlite)
    }

    fn on(backend: Backend) -> Storage {
        let db = match backend {
            Backend::Sqlite => None,
            Backend::Postgres | Backend::Cluster => Some(TestDb::create().unwrap_or_else(|| {
                panic!(
                    "NATTER_TEST_BACKEND={backend} needs a PostgreSQL at {} (or NATTER_TEST_POSTGRES_URL)",
                    pg_root()
                )
            })),
        };
        let bus = match backend {
            Backend::Sqlite | Backend::Postgres => None,
            Backend::Cluster => Some(TestBus::shared().unwrap_or_else(|| {
                panic!("NATTER_TEST_BACKEND=cluster needs Redis (redis-server or NATTER_TEST_REDIS_URL)")
            })),
        };
        Storage { backend, db, bus }
    }

    pub fn instances(&self) -> usize {
        self.backend.instances()
    }

    /// The `--db` value for a server whose directory is `dir`.
    pub fn db_target(&self, dir: &Path) -> OsString {
        match &self.db {
            Some(db) => db.url().into(),
            None => dir.join("natter.db").into(),
        }
    }

    /// The flags that put instance `i` on this storage: `--db`, and for a cluster the bus
    /// flags and `--instance-name nodeI`.
    pub fn args(&self, dir: &Path, i: usize) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["--db".into(), self.db_target(dir)];
        if let Some(bus) = &self.bus {
            args.extend(bus.args().into_iter().map(OsString::from));
            args.extend(["--instance-name".into(), format!("node{i}").into()]);
        }
        args
    }
}
