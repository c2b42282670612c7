//! What cluster runs stand on: a PostgreSQL database made for the run (on the server at
//! `NATTER_BENCH_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432`, through
//! `psql`; dropped at the end) and a throwaway `redis-server` on a free port, so its CPU
//! time is the bench's alone. PostgreSQL's CPU is that of every `postgres` process on the
//! machine, so run the bench on a machine whose PostgreSQL does nothing else meanwhile.

use std::process::Stdio;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use crate::target::cpu_seconds_of;

/// The database and the Redis of one cluster run; both removed when dropped.
pub struct Backing {
    root: String,
    db: String,
    redis: Child,
    redis_pid: u32,
    redis_port: u16,
    _dir: tempfile::TempDir,
}

async fn psql(url: &str, sql: &str) -> anyhow::Result<()> {
    let out = Command::new("psql")
        .arg(url)
        .args(["-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql])
        .stdin(Stdio::null())
        .output()
        .await
        .context("running psql (install postgresql-client)")?;
    if !out.status.success() {
        bail!("psql: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

impl Backing {
    /// A fresh database and a Redis.
    pub async fn start() -> anyhow::Result<Backing> {
        let root = std::env::var("NATTER_BENCH_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let db = format!("natter_bench_{}_{nanos}", std::process::id());
        psql(
            &format!("{root}/postgres"),
            &format!("CREATE DATABASE {db}"),
        )
        .await
        .with_context(|| format!("creating a database on {root}"))?;
        let dir = tempfile::tempdir().context("a directory for redis-server")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free port")?
            .port();
        let redis = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting redis-server (install redis-server)")?;
        let redis_pid = redis.id().context("redis-server exited at once")?;
        let backing = Backing {
            root,
            db,
            redis,
            redis_pid,
            redis_port: port,
            _dir: dir,
        };
        // Up when it accepts a connection; bounded.
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(backing);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        bail!("redis-server did not listen on {port}")
    }

    /// natter-server's flags for instance `i`: the database, and the bus when `bus`.
    pub fn args(&self, i: usize, bus: bool) -> Vec<String> {
        let mut args = vec!["--db".to_owned(), format!("{}/{}", self.root, self.db)];
        if bus {
            args.extend([
                "--bus".to_owned(),
                format!("redis://127.0.0.1:{}", self.redis_port),
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

    /// Drops the database and stops Redis.
    pub async fn stop(mut self) {
        let _ = self.redis.start_kill();
        let _ = self.redis.wait().await;
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db);
        if let Err(e) = psql(&format!("{}/postgres", self.root), &drop).await {
            eprintln!("natter-bench: could not drop {}: {e:#}", self.db);
        }
    }
}
