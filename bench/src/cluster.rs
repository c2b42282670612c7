//! What cluster runs stand on: a PostgreSQL database made for the run (on the server at
//! `NATTER_BENCH_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432`, through
//! `psql`; dropped at the end) and a throwaway `redis-server` on a free port, so its CPU
//! time is the bench's alone. Both are natter-testkit's (the one copy the tests use too),
//! whose calls block: they run on tokio's blocking threads. PostgreSQL's CPU is that of
//! every `postgres` process on the machine, so run the bench on a machine whose PostgreSQL
//! does nothing else meanwhile.

use anyhow::Context;
use natter_testkit::pg::TestDatabase;
use natter_testkit::redis::ThrowawayRedis;

use crate::target::cpu_seconds_of;

/// The database and the Redis of one cluster run; both removed when dropped (Redis first:
/// fields drop in this order).
pub struct Backing {
    redis: ThrowawayRedis,
    db: TestDatabase,
    redis_pid: u32,
}

impl Backing {
    /// A fresh database and a Redis.
    pub async fn start() -> anyhow::Result<Backing> {
        tokio::task::spawn_blocking(Self::start_blocking)
            .await
            .context("setting up the cluster run")?
    }

    fn start_blocking() -> anyhow::Result<Backing> {
        let root = natter_testkit::pg::root_from_env("NATTER_BENCH_POSTGRES_URL");
        let db = TestDatabase::create(&root, "natter_bench")
            .with_context(|| format!("creating a database on {root}"))?;
        let redis = ThrowawayRedis::start().context("starting redis-server")?;
        let redis_pid = redis.pid().context("redis-server exited at once")?;
        Ok(Backing {
            redis,
            db,
            redis_pid,
        })
    }

    /// natter-server's flags for instance `i`: the database, and the bus when `bus`.
    pub fn args(&self, i: usize, bus: bool) -> Vec<String> {
        let mut args = vec!["--db".to_owned(), self.db.url()];
        if bus {
            args.extend([
                "--bus".to_owned(),
                self.redis.url(),
                "--instance-name".to_owned(),
                format!("bench{i}"),
            ]);
        }
        args
    }

    /// CPU seconds Redis has used so far.
    pub fn redis_cpu_seconds(&self) -> f64 {
        cpu_seconds_of(self.redis_pid).unwrap_or(0.0)
    }

    /// CPU seconds every `postgres` process on the machine has used so far (backends come
    /// and go; a run's delta is what matters).
    pub fn postgres_cpu_seconds() -> f64 {
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return 0.0;
        };
        procs
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim() == "postgres")
            })
            .filter_map(|pid| cpu_seconds_of(pid).ok())
            .sum()
    }

    /// Stops Redis and drops the database (an error there is printed).
    pub async fn stop(self) {
        if let Err(e) = tokio::task::spawn_blocking(move || drop(self)).await {
            eprintln!("natter-bench: stopping the cluster run's Redis and database: {e}");
        }
    }
}
