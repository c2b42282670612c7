//! The client row: how fast `natter tail --json` consumes a burst of messages.
//!
//! The client binary is built by its own crate; when it is missing or has no `tail --json`
//! yet, the row is reported as skipped with the reason rather than failing the suite.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

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
