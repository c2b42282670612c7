//! The network task of the chat screen: an actor that owns the socket and reports
//! [`NetEvent`]s, taking [`Cmd`]s in order over a channel. The app never waits on it.
//!
//! One identity at a time (`session`): authenticate (stored token, else register with a
//! generated password, else ask), load history, open the socket with `?after=<last id>`,
//! flush the outbox over it, and on any drop come back with backoff and jitter (0.5 s → 30 s).
//! While the socket is down, HTTP is probed every [`POLL_INTERVAL`]: if it answers, the
//! badge says FALLBACK, new messages arrive by polling and the outbox is flushed by POST.
//!
//! - [`ws`]: one WebSocket connection; [`http`]: REST calls (shared with the subcommands);
//!   [`tls`]: what both trust for `https://` and `wss://`.

pub mod http;
mod session;
pub mod tls;
pub mod ws;

use std::time::Duration;

use tokio::sync::mpsc;

use crate::msg::{Cmd, NetEvent};
use crate::outbox::Keeper;
use crate::paths::Paths;
use tls::Tls;

/// How often HTTP is polled while the socket is down: under the 2 s in which the badge
/// must follow a change.
pub const POLL_INTERVAL: Duration = Duration::from_millis(1500);
/// First reconnect delay.
pub const BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Longest reconnect delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A server's address, normalized: scheme, host, port, no trailing slash.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerUrl(String);

impl ServerUrl {
    /// From what the user typed: `127.0.0.1:8000`, `http://host:8000/`, `ws://…`. Refuses
    /// what could never reach a server (the error says what is expected): a scheme other
    /// than http(s)/ws(s), no host, and without a scheme anything but `HOST:PORT`, since a
    /// bare word (`--server alice`) is far more often a slip than a server on port 80.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let expected = "expected http://HOST:PORT or HOST:PORT, e.g. http://127.0.0.1:8000";
        let bad = |why: &str| format!("--server {s:?}: {why}; {expected}");
        let (scheme, rest) = match s.split_once("://") {
            Some(("ws" | "http", rest)) => ("http", rest),
            Some(("wss" | "https", rest)) => ("https", rest),
            Some((other, _)) => return Err(bad(&format!("unsupported scheme {other:?}"))),
            None => {
                let port = s.trim_end_matches('/').rsplit_once(':').map(|(_, p)| p);
                if port.is_none_or(|p| p.parse::<u16>().is_err()) {
                    return Err(bad("no scheme and no port"));
                }
                ("http", s)
            }
        };
        let host = rest.trim_end_matches('/');
        let base = format!("{scheme}://{host}");
        let url = reqwest::Url::parse(&base).map_err(|e| bad(&format!("not a URL ({e})")))?;
        if host.is_empty() || url.host_str().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        Ok(ServerUrl(base))
    }

    /// `http://host:port`.
    pub fn http_base(&self) -> &str {
        &self.0
    }

    /// `ws://host:port`.
    pub fn ws_base(&self) -> String {
        if let Some(rest) = self.0.strip_prefix("https://") {
            format!("wss://{rest}")
        } else {
            format!("ws://{}", self.0.trim_start_matches("http://"))
        }
    }

    /// Whether this server is reached over TLS (`https://`, `wss://`).
    pub fn is_tls(&self) -> bool {
        self.0.starts_with("https://")
    }

    /// The host alone, without the port (an IPv6 address keeps its brackets).
    pub fn hostname(&self) -> String {
        reqwest::Url::parse(&self.0)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// `host:port`, for display.
    pub fn host(&self) -> &str {
        self.0.split_once("://").map_or(&self.0, |(_, h)| h)
    }
}

impl std::fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the network task needs to know.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// The server.
    pub server: ServerUrl,
    /// Where credentials and outboxes live.
    pub paths: Paths,
    /// What to trust over TLS.
    pub tls: Tls,
}

/// The delay before reconnect attempt `attempt` (0-based): a ceiling doubling from twice
/// [`BACKOFF_MIN`] up to [`BACKOFF_MAX`], then "equal jitter" (half fixed, half random), so
/// delays run from 0.5 s to 30 s and many clients dropped by one restart do not all come
/// back in the same instant.
pub fn backoff(attempt: u32, random: u64) -> Duration {
    let base = (BACKOFF_MIN * 2)
        .saturating_mul(1u32 << attempt.min(16))
        .min(BACKOFF_MAX);
    let half = base / 2;
    let jitter_ms = random % (u64::try_from(half.as_millis()).unwrap_or(1).max(1) + 1);
    half + Duration::from_millis(jitter_ms)
}

/// A random number from the OS (0 if it cannot give one: jitter is a nicety).
pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b)
}

/// Runs the network task until [`Cmd::Quit`] or until the app drops its sender. Sends
/// arrive on `cmds` from the outbox keeper `outbox`, once on disk; the task asks the keeper
/// for what each identity's outbox holds and tells it what the server answered for.
pub async fn run(
    config: NetConfig,
    cmds: mpsc::UnboundedReceiver<Cmd>,
    outbox: Keeper,
    events: mpsc::Sender<NetEvent>,
) {
    session::Actor::new(config, cmds, outbox, events)
        .run()
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_normalize() {
        let u = ServerUrl::parse("127.0.0.1:8000/").unwrap();
        assert_eq!(u.http_base(), "http://127.0.0.1:8000");
        assert_eq!(u.ws_base(), "ws://127.0.0.1:8000");
        assert_eq!(
            ServerUrl::parse("ws://h:1").unwrap().http_base(),
            "http://h:1"
        );
        assert!(ServerUrl::parse("http://").is_err());
        assert!(
            ServerUrl::parse("not-a-url").is_err(),
            "no scheme needs a port"
        );
        assert!(ServerUrl::parse("host:port").is_err());
        assert!(ServerUrl::parse("http://a b:1").is_err());
        assert_eq!(
            ServerUrl::parse("https://chat.example").unwrap().ws_base(),
            "wss://chat.example"
        );
    }

    #[test]
    fn backoff_doubles_within_bounds() {
        for attempt in 0..40 {
            for r in [0, 1, 12345, u64::MAX] {
                let d = backoff(attempt, r);
                assert!(d >= BACKOFF_MIN && d <= BACKOFF_MAX, "{attempt} {d:?}");
            }
        }
        assert_eq!(backoff(0, 0), BACKOFF_MIN);
        assert!(backoff(20, 0) >= Duration::from_secs(15));
    }
}
