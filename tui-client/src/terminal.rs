//! The terminal in and out of raw mode: alternate screen, bracketed paste (a multi-line
//! paste arrives as one event), mouse wheel. [`restore`] runs on every exit path: normal
//! return, error, panic (through the hook installed by [`init`]) and SIGTERM/SIGHUP (which
//! the chat loop turns into a normal return). Also the chat screen's log file, since
//! nothing may be written to the terminal while it is in raw mode; message text never goes
//! there, at any level.

use std::io::{self, Stdout};

use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

use crate::paths::Paths;

/// The chat screen's terminal.
pub type Term = Terminal<CrosstermBackend<Stdout>>;

/// Enters raw mode and the alternate screen, and makes a panic restore the terminal
/// before its message is printed.
pub fn init() -> io::Result<Term> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
    enable_raw_mode()?;
    let mut stdout = io::stdout();
    if let Err(e) = execute!(
        stdout,
        EnterAlternateScreen,
        EnableBracketedPaste,
        EnableMouseCapture
    ) {
        restore();
        return Err(e);
    }
    Terminal::new(CrosstermBackend::new(stdout))
}

/// Leaves raw mode and the alternate screen. Safe to call more than once.
pub fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(
        io::stdout(),
        DisableMouseCapture,
        DisableBracketedPaste,
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

/// Sends `tracing` events to `natter.log` in the state directory (level from `RUST_LOG`,
/// default `warn`). Failing to open the log is not worth refusing to chat over.
pub fn init_logging(paths: &Paths) {
    let path = paths.log_file();
    if crate::paths::create_private_dir(&paths.state_dir).is_err() {
        return;
    }
    let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    else {
        return;
    };
    let requested = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // `try_init` (not `set_global_default`) also routes the `log` crate's records, which
    // is how tungstenite logs, through the same filter.
    use tracing_subscriber::util::SubscriberInitExt;
    let _ = file_subscriber(file, requested).try_init();
}

/// Crates whose trace level prints WebSocket payloads, i.e. message text, direct messages
/// included: tungstenite logs every message it reads ("Received message {text}") and every
/// frame's payload at trace. The server drops the same events (its `main.rs`).
const PAYLOAD_TRACING_CRATES: [&str; 2] = ["tungstenite", "tokio_tungstenite"];

/// Whether `meta` is a trace event from one of [`PAYLOAD_TRACING_CRATES`] (their targets
/// are module paths, e.g. `tungstenite::protocol`).
fn may_print_payload(meta: &tracing::Metadata<'_>) -> bool {
    *meta.level() == tracing::Level::TRACE
        && PAYLOAD_TRACING_CRATES.iter().any(|krate| {
            meta.target()
                .strip_prefix(krate)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
        })
}

/// The log file's subscriber: `requested` (from `RUST_LOG`), plain text into `file`, and
/// never a WebSocket payload whatever `RUST_LOG` asks for.
pub fn file_subscriber(
    file: std::fs::File,
    requested: tracing_subscriber::EnvFilter,
) -> impl tracing::Subscriber + Send + Sync {
    use tracing_subscriber::filter::{FilterExt, filter_fn};
    use tracing_subscriber::prelude::*;
    // A ceiling RUST_LOG cannot raise: a directive appended to the EnvFilter would lose to
    // a more specific one such as `tungstenite::protocol=trace`.
    let filter = requested.and(filter_fn(|meta| !may_print_payload(meta)));
    tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .with_filter(filter),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a test: a panic is the failure report

    use super::*;

    /// Even at `RUST_LOG=trace` the log file never gets message text from the WebSocket
    /// library's trace events; everything else at trace still gets through.
    #[test]
    fn the_log_file_never_gets_websocket_payloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("natter.log");
        let file = std::fs::File::create(&path).unwrap();
        let subscriber = file_subscriber(file, tracing_subscriber::EnvFilter::new("trace"));
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "tungstenite::protocol", "Received message secret one");
            tracing::trace!(target: "tokio_tungstenite", "secret two");
            tracing::debug!(target: "tungstenite::handshake", "handshake done");
            tracing::trace!(target: "natter::net", "reconnecting");
            tracing::trace!(target: "tungstenite_like", "not the same crate");
        });
        let log = std::fs::read_to_string(&path).unwrap();
        assert!(!log.contains("secret"), "{log}");
        for kept in ["handshake done", "reconnecting", "not the same crate"] {
            assert!(log.contains(kept), "{kept}: {log}");
        }
    }
}
