//! The server under test, as a child process: natter-server on a temporary database, or
//! this binary's own `ceiling-server`. Either way it binds 127.0.0.1:0 and says where on
//! stdout, and its PID lets us read its resident memory from `/proc`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::StreamExt;
use natter_shared::protocol::{AuthResponse, Credentials};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long a server may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How long one registration may take (argon2 on a busy machine).
const REGISTER_TIMEOUT: Duration = Duration::from_secs(30);

/// Registrations in flight at once.
const REGISTER_CONCURRENCY: usize = 4;

/// Which server a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// natter-server, storing every message.
    Natter,
    /// The minimal broadcast server in this crate.
    Ceiling,
}

impl Kind {
    /// `natter` or `ceiling`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Natter => "natter",
            Kind::Ceiling => "ceiling",
        }
    }
}

/// A running server, killed when dropped.
pub struct Server {
    /// Which one.
    pub kind: Kind,
    /// Where it listens (always 127.0.0.1).
    pub addr: SocketAddr,
    child: Child,
    pid: u32,
    // Holds the database and the server's log until the server is gone.
    dir: tempfile::TempDir,
}

/// Options for starting either server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The `natter-server` binary.
    pub binary: PathBuf,
    /// natter's `--max-connections`.
    pub max_connections: usize,
    /// Frames queued per connection before a slow reader is closed (both servers).
    pub queue_capacity: usize,
    /// More natter-server flags, after the others (a later `--db` wins over the temporary
    /// file): the cluster's database and bus.
    pub extra_args: Vec<String>,
}

impl Server {
    /// Starts natter-server on a fresh temporary database with the rate limit off.
    pub async fn start_natter(opts: &ServerOptions) -> anyhow::Result<Server> {
        let dir = tempfile::tempdir().context("creating a temporary directory")?;
        let db = dir.path().join("bench.db");
        let mut cmd = Command::new(&opts.binary);
        cmd.arg("--bind")
            .arg("127.0.0.1:0")
            .arg("--db")
            .arg(&db)
            .arg("--rate-limit")
            .arg("0")
            // The benchmark registers thousands of accounts from one address.
            .arg("--register-burst")
            .arg("0")
            .arg("--max-connections")
            .arg(opts.max_connections.to_string())
            // The idle scenario puts 100 sockets on each account; natter's default of 32 per
            // user would refuse most of them (503) and measure the refusal instead.
            .arg("--max-connections-per-user")
            .arg(opts.max_connections.to_string())
            .arg("--queue-capacity")
            .arg(opts.queue_capacity.to_string())
            .args(&opts.extra_args)
            .env("RUST_LOG", "warn");
        Self::start(Kind::Natter, cmd, dir)
            .await
            .with_context(|| format!("starting {}", opts.binary.display()))
    }

    /// Starts `natter-bench ceiling-server` (this very binary).
    pub async fn start_ceiling(opts: &ServerOptions) -> anyhow::Result<Server> {
        let dir = tempfile::tempdir().context("creating a temporary directory")?;
        let exe = std::env::current_exe().context("finding natter-bench's own path")?;
        let mut cmd = Command::new(exe);
        cmd.arg("ceiling-server")
            .arg("--bind")
            .arg("127.0.0.1:0")
            .arg("--queue-capacity")
            .arg(opts.queue_capacity.to_string());
        Self::start(Kind::Ceiling, cmd, dir).await
    }

    async fn start(kind: Kind, mut cmd: Command, dir: tempfile::TempDir) -> anyhow::Result<Server> {
        let log = std::fs::File::create(dir.path().join("server.log"))
            .context("creating the server log")?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("spawning the server")?;
        let pid = child.id().context("server exited at once")?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(START_TIMEOUT, lines.next_line())
            .await
            .context("server did not print its address in time")?
            .context("reading server stdout")?;
        let Some(line) = line else {
            let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
            bail!("server exited before listening; its log:\n{log}");
        };
        let addr = natter_testkit::process::parse_listening(&line)
            .with_context(|| format!("no address in the server's first line {line:?}"))?;
        if !addr.ip().is_loopback() {
            bail!("server bound {addr}, not a loopback address");
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Server {
            kind,
            addr,
            child,
            pid,
            dir,
        })
    }

    /// Resident memory, KiB, from `/proc/PID/status`.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .context("reading the server's /proc status")?;
        parse_vm_rss(&status).context("no VmRSS line in /proc status")
    }

    /// CPU time (user + system) the server has used so far, in seconds.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        cpu_seconds_of(self.pid).context("the server's CPU time")
    }

    /// CPU seconds per thread name (threads of one name summed), e.g. `tokio-rt-worker`,
    /// `natter-store-wr`: shows which thread is the bottleneck.
    pub fn thread_cpu_seconds(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.pid)) else {
            return out;
        };
        for task in tasks.flatten() {
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                continue;
            };
            let name = stat
                .find('(')
                .zip(stat.rfind(')'))
                .map(|(a, b)| stat[a + 1..b].to_owned())
                .unwrap_or_default();
            if let Some(ticks) = parse_cpu_ticks(&stat) {
                *out.entry(name).or_insert(0.0) += ticks as f64 / USER_HZ;
            }
        }
        out
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The server's log so far (natter at `warn`), for error messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Asks the server to stop (SIGTERM, so a profiler wrapping it can write its output),
    /// then kills it if it has not exited within 10 s.
    pub async fn stop(mut self) {
        let term = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        if term.is_ok_and(|s| s.success())
            && tokio::time::timeout(Duration::from_secs(10), self.child.wait())
                .await
                .is_ok()
        {
            return;
        }
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }

    /// Registers `count` users named `bu0…`, returning their tokens in order.
    pub async fn register_users(&self, count: usize) -> anyhow::Result<Vec<String>> {
        let client = reqwest::Client::builder()
            .timeout(REGISTER_TIMEOUT)
            .build()
            .context("building the HTTP client")?;
        let url = format!("http://{}/api/auth/register", self.addr);
        let results: Vec<anyhow::Result<String>> = futures_util::stream::iter(0..count)
            .map(|i| {
                let client = client.clone();
                let url = url.clone();
                async move {
                    let body = Credentials {
                        username: format!("bu{i}"),
                        password: "bench-password".to_owned(),
                    };
                    let resp = client
                        .post(&url)
                        .json(&body)
                        .send()
                        .await
                        .with_context(|| format!("POST {url}"))?;
                    let status = resp.status();
                    if status != reqwest::StatusCode::CREATED {
                        let text = resp.text().await.unwrap_or_default();
                        bail!("registering bu{i}: {status} {text}");
                    }
                    let auth: AuthResponse = resp.json().await.context("register reply")?;
                    Ok(auth.token)
                }
            })
            .buffered(REGISTER_CONCURRENCY)
            .collect()
            .await;
        results.into_iter().collect()
    }
}

/// CPU time (user + system, every thread) process `pid` has used so far, in seconds.
pub fn cpu_seconds_of(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    parse_cpu_ticks(&stat)
        .map(|ticks| ticks as f64 / USER_HZ)
        .context("malformed /proc stat")
}

/// CPU seconds this process (the load generator) has used so far.
pub fn own_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| parse_cpu_ticks(&s))
        .map_or(0.0, |t| t as f64 / USER_HZ)
}

/// Clock ticks per second in `/proc/PID/stat` (USER_HZ, 100 on every Linux ABI in use).
const USER_HZ: f64 = 100.0;

/// utime + stime, in clock ticks, from a `/proc/PID/stat` line. The command name (field 2)
/// is in parentheses and may hold spaces, so fields are counted after its closing `)`.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After ")": state is field 3, so utime (14) and stime (15) are the 12th and 13th.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The `VmRSS:   1234 kB` value.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `target/release/natter-server` beside this binary's own directory, the usual layout.
pub fn default_server_binary() -> PathBuf {
    sibling_binary("natter-server")
}

/// A binary built into the same target directory as this one.
pub fn sibling_binary(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .map(|d| d.join(name))
        .unwrap_or_else(|| PathBuf::from("target/release").join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CPU ticks are utime + stime, counted past a command name with spaces.
    #[test]
    fn cpu_ticks() {
        let stat = "1234 (natter server) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 3 0 100";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    /// RSS comes from the VmRSS line, in kB.
    #[test]
    fn vm_rss_line() {
        let status = "Name:\tnatter-server\nVmPeak:\t  9999 kB\nVmRSS:\t    5120 kB\n";
        assert_eq!(parse_vm_rss(status), Some(5120));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
    }
}
