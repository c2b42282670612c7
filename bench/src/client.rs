//! The client row: how fast `natter tail --json` consumes a burst of messages.
//!
//! The client binary is built by its own crate; when it is missing or has no `tail --json`
//! yet, the row is reported as skipped with the reason rather than failing the suite.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::load::Pace;
use crate::marker::PREFIX;
use crate::scenario::{Load, Prepared, Routing};
use crate::target::{Kind, ServerOptions};

/// The client row's outcome.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientResult {
    /// Measured.
    Measured {
        /// Lines `tail` printed.
        messages: u64,
        /// Lines per second, from the first send to the last line.
        messages_per_s: f64,
    },
    /// Not measured, and why.
    Skipped(String),
}

/// Whether `binary` looks like a client with `tail --json`; `Err` says why not.
pub async fn check_tail(binary: &Path) -> Result<(), String> {
    if !binary.exists() {
        return Err(format!(
            "{} not built (cargo build --release -p natter)",
            binary.display()
        ));
    }
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        Command::new(binary)
            .args(["tail", "--help"])
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .map_err(|_| "`natter tail --help` did not finish".to_owned())?
    .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let help = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !help.contains("--json") {
        return Err("the client has no `tail --json` yet".to_owned());
    }
    Ok(())
}

/// Stores `burst` messages on a fresh natter-server, then times `natter tail --json
/// --after 0` printing them all: the client's side of a burst, not capped by the server's
/// ingress rate. The time runs from spawning `tail` to its last line.
pub async fn measure_tail(binary: &Path, natter: &ServerOptions, burst: u64) -> ClientResult {
    match measure(binary, natter, burst).await {
        Ok(r) => r,
        Err(e) => ClientResult::Skipped(format!("{e:#}")),
    }
}

async fn measure(
    binary: &Path,
    natter: &ServerOptions,
    burst: u64,
) -> anyhow::Result<ClientResult> {
    const SENDERS: u64 = 4;
    let mut p = Prepared::start(Kind::Natter, natter, Routing::Group { users: 2 }, 4).await?;
    let load = Load {
        senders: 4,
        pace: Pace::Window(64),
        duration: Duration::from_secs(120),
        drain: Duration::from_secs(5),
        text_bytes: 64,
        limit: Some(burst.div_ceil(SENDERS)),
    };
    let stored = p.run("client-burst", load).await;
    if stored.acknowledged < burst {
        anyhow::bail!(
            "only {} of {burst} burst messages were stored",
            stored.acknowledged
        );
    }
    let token = p
        .tokens
        .get(1)
        .context("no token for the tail user")?
        .clone();
    let dir = tempfile::tempdir().context("temporary config dir")?;
    let started = Instant::now();
    let mut child = Command::new(binary)
        .args(["tail", "--json", "--after", "0"])
        .env("NATTER_SERVER", format!("http://{}", p.server.addr))
        .env("NATTER_TOKEN", token)
        .env("XDG_CONFIG_HOME", dir.path())
        .env("XDG_STATE_HOME", dir.path())
        .env("HOME", dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("spawning {}", binary.display()))?;
    let stdout = child.stdout.take().context("tail stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut messages = 0u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while messages < burst {
        match tokio::time::timeout_at(deadline, lines.next_line()).await {
            Ok(Ok(Some(line))) => {
                if line.contains(PREFIX) {
                    messages += 1;
                }
            }
            Ok(Ok(None)) | Ok(Err(_)) | Err(_) => break,
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    p.stop().await;
    if messages < burst {
        anyhow::bail!("tail printed {messages} of {burst} messages before stopping");
    }
    Ok(ClientResult::Measured {
        messages,
        messages_per_s: (messages as f64 / elapsed).round(),
    })
}
