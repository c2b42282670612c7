//! Server settings with their defaults. `main.rs` fills them from flags and environment;
//! tests build them directly.

use std::time::Duration;

use natter_shared::validate::MAX_TEXT_CHARS;

use crate::bus::BusTarget;
use crate::store::DbTarget;
use crate::tls::TlsFiles;

/// Default of [`Config::rate_per_sec`] (and `--rate-limit`).
pub const DEFAULT_RATE_PER_SEC: u32 = 20;
/// Default of [`Config::rate_burst`] (and `--rate-burst`).
pub const DEFAULT_RATE_BURST: u32 = 40;
/// Default of [`Config::login_burst`] (and `--login-burst`).
pub const DEFAULT_LOGIN_BURST: u32 = 10;
/// Default of [`Config::max_connections`] (and `--max-connections`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default of [`Config::max_connections_per_user`] (and `--max-connections-per-user`).
pub const DEFAULT_MAX_CONNECTIONS_PER_USER: usize = 32;
/// Default of [`Config::max_http_connections`] (and `--max-http-connections`).
pub const DEFAULT_MAX_HTTP_CONNECTIONS: usize = 1024;
/// Default of [`Config::request_timeout`], in seconds (and `--request-timeout`).
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 30;
/// Default of [`Config::register_burst`] (and `--register-burst`).
pub const DEFAULT_REGISTER_BURST: u32 = 10;
/// Default of [`Config::queue_capacity`] (and `--queue-capacity`).
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;
/// Default of [`Config::idle_timeout`], in seconds (and `--idle-timeout`).
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 60;
/// Default of [`Config::write_timeout`], in seconds (and `--write-timeout`).
pub const DEFAULT_WRITE_TIMEOUT_SECS: u64 = 30;

/// Everything [`crate::Server::open`] needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    /// The database: a SQLite file (created if missing) or a PostgreSQL database.
    pub db: DbTarget,
    /// Messages per second one user may send (all connections and REST together); 0 = no limit.
    pub rate_per_sec: u32,
    /// How many messages a user may send at once before the rate applies.
    pub rate_burst: u32,
    /// Failed logins allowed for one name before attempts are refused with 429; 0 = no limit.
    pub login_burst: u32,
    /// After `login_burst` failures, one more attempt per this interval.
    pub login_refill: Duration,
    /// Most WebSocket connections open at once; further upgrades get 503.
    pub max_connections: usize,
    /// Most WebSocket connections one account may have open at once.
    pub max_connections_per_user: usize,
    /// Most plain HTTP connections (not upgraded) open at once; past it the newest are
    /// refused (see `limits`).
    pub max_http_connections: usize,
    /// A request's head must arrive within this (an idle keep-alive connection is closed
    /// after it), and then its body within this again; late ones get 408.
    pub request_timeout: Duration,
    /// Registrations one client address may make at once before the refill applies; 0 = no
    /// limit.
    pub register_burst: u32,
    /// After `register_burst`, one more registration per address per this interval.
    pub register_refill: Duration,
    /// Proxies whose `X-Forwarded-For` is believed when they are the peer.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Longest message text, in characters.
    pub max_text_chars: usize,
    /// Frames one connection may have queued; one that falls further behind catches up.
    pub queue_capacity: usize,
    /// Bytes of the latest messages' frames the hub keeps, so connections catching up clone
    /// them instead of reading the store; older messages come from the store.
    pub recent_bytes: usize,
    /// How often the server pings each WebSocket.
    pub ping_interval: Duration,
    /// A WebSocket silent (no frame, no pong) for this long is dropped.
    pub idle_timeout: Duration,
    /// How long shutdown waits for connections to close before giving up on them.
    pub shutdown_grace: Duration,
    /// A WebSocket that accepts no data for this long is closed (1008) and its slot freed.
    pub write_timeout: Duration,
    /// Serve TLS with this certificate and key on the listening port (the whole port);
    /// `None` (the default) serves plain HTTP, as behind a reverse proxy that terminates TLS.
    pub tls: Option<TlsFiles>,
    /// Test hook: while this says `true`, connection tasks stall before writing queued
    /// frames, as a scheduling hiccup or a slow machine would stall them.
    #[doc(hidden)]
    pub pause_writes: Option<tokio::sync::watch::Receiver<bool>>,
    /// Test only: SQLite's `max_page_count` for the database, so a test can fill it and see
    /// `storage_full` without a tiny filesystem. `None` (the default) leaves SQLite's limit.
    /// Refused with PostgreSQL.
    #[doc(hidden)]
    pub max_page_count: Option<u32>,
    /// Test only: PostgreSQL batches whose commit is answered as lost (see
    /// `store::TestHooks`).
    #[doc(hidden)]
    pub lost_commit_answers: u32,
    /// Test only: abort right after the first commit that stores a message (see
    /// `store::TestHooks`).
    #[doc(hidden)]
    pub die_after_commit: bool,
    /// The Redis server that connects this instance to the others, and the prefix of its
    /// keys and channels; `None` (the default) for one instance alone. Needs PostgreSQL.
    pub bus: Option<BusTarget>,
    /// What logs, presence bookkeeping and metrics call this instance; `None` (the
    /// default) for the host name and the listening port.
    pub instance_name: Option<String>,
}

impl Config {
    /// Defaults with the given database (a path converts to a SQLite file).
    pub fn new(db: impl Into<DbTarget>) -> Self {
        Config {
            db: db.into(),
            rate_per_sec: DEFAULT_RATE_PER_SEC,
            rate_burst: DEFAULT_RATE_BURST,
            login_burst: DEFAULT_LOGIN_BURST,
            login_refill: Duration::from_secs(3),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_user: DEFAULT_MAX_CONNECTIONS_PER_USER,
            max_http_connections: DEFAULT_MAX_HTTP_CONNECTIONS,
            request_timeout: Duration::from_secs(DEFAULT_REQUEST_TIMEOUT_SECS),
            register_burst: DEFAULT_REGISTER_BURST,
            register_refill: Duration::from_secs(6),
            trusted_proxies: Vec::new(),
            max_text_chars: MAX_TEXT_CHARS,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            recent_bytes: 16 * 1024 * 1024,
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECS),
            shutdown_grace: Duration::from_secs(4),
            write_timeout: Duration::from_secs(DEFAULT_WRITE_TIMEOUT_SECS),
            tls: None,
            pause_writes: None,
            max_page_count: None,
            lost_commit_answers: 0,
            die_after_commit: false,
            bus: None,
            instance_name: None,
        }
    }
}
