//! Serving, as the binary does it: the flags ([`Args`]), logging (with the filter that keeps
//! message text out of every log), the open-files limit, the database, bind, and
//! `Server::serve` until SIGINT/SIGTERM; with TLS, SIGHUP rereads the certificate and key.
//! One plain line on stdout says where it listens.
//!
//! Logging goes to stderr at `RUST_LOG` (default `info`), except that message text never
//! does, at any level: the WebSocket library's payload-printing trace events and
//! tokio-postgres' statement parameters are filtered out whatever `RUST_LOG` says.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser};
use tracing_subscriber::EnvFilter;

use crate::bus::BusTarget;
use crate::cli::Tool;
use crate::store::DbTarget;
use crate::tls::{CertReloader, TlsFiles};
use crate::{Config, Server, config};

/// natter chat server: REST under /api/, WebSocket at /ws/chat/, messages stored in SQLite
/// or PostgreSQL.
#[derive(Debug, Parser)]
#[command(version, about, args_override_self = true)]
struct Args {
    /// None: serve.
    #[command(subcommand)]
    tool: Option<Tool>,
    /// Address to listen on (port 0 picks a free port; the chosen one is printed).
    #[arg(long, env = "NATTER_BIND", default_value = "127.0.0.1:8000")]
    bind: SocketAddr,
    /// The database: a SQLite file (created and migrated if needed), or a PostgreSQL
    /// database as postgres://USER[:PASSWORD]@HOST[:PORT]/NAME (it must exist; its tables
    /// are created and migrated if needed).
    #[arg(long, env = "NATTER_DB", default_value = "natter.db", value_name = "PATH|URL", value_parser = DbArg)]
    db: DbTarget,
    /// Messages per second one user may send; 0 turns the limit off.
    #[arg(long, env = "NATTER_RATE_LIMIT", default_value_t = config::DEFAULT_RATE_PER_SEC)]
    rate_limit: u32,
    /// Messages a user may send in a burst before the rate applies.
    #[arg(long, env = "NATTER_RATE_BURST", default_value_t = config::DEFAULT_RATE_BURST)]
    rate_burst: u32,
    /// Failed logins allowed for one name before further attempts get 429; after that one
    /// more every 3 s (a success gives its attempt back). 0 turns the limit off.
    #[arg(long, env = "NATTER_LOGIN_BURST", default_value_t = config::DEFAULT_LOGIN_BURST)]
    login_burst: u32,
    /// Most WebSocket connections open at once.
    #[arg(long, env = "NATTER_MAX_CONNECTIONS", default_value_t = config::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Most WebSocket connections one account may have open at once.
    #[arg(long, env = "NATTER_MAX_CONNECTIONS_PER_USER", default_value_t = config::DEFAULT_MAX_CONNECTIONS_PER_USER as u64, value_parser = clap::value_parser!(u64).range(1..))]
    max_connections_per_user: u64,
    /// Most plain HTTP connections (not WebSockets) open at once; past it the newest are
    /// refused with 503 (health checks still answered).
    #[arg(long, env = "NATTER_MAX_HTTP_CONNECTIONS", default_value_t = config::DEFAULT_MAX_HTTP_CONNECTIONS as u64, value_parser = clap::value_parser!(u64).range(1..))]
    max_http_connections: u64,
    /// Seconds a client may take to send a request's head (or to idle between requests),
    /// and then again its body; late ones get 408.
    #[arg(long, env = "NATTER_REQUEST_TIMEOUT", default_value_t = config::DEFAULT_REQUEST_TIMEOUT_SECS, value_parser = clap::value_parser!(u64).range(1..))]
    request_timeout: u64,
    /// Registrations one client address may make at once; after that one more every 6 s.
    /// 0 turns the limit off.
    #[arg(long, env = "NATTER_REGISTER_BURST", default_value_t = config::DEFAULT_REGISTER_BURST)]
    register_burst: u32,
    /// Reverse proxies (IP addresses, comma-separated) whose X-Forwarded-For header names
    /// the client, for the per-address throttles; from anyone else it is ignored.
    #[arg(long, env = "NATTER_TRUSTED_PROXY", value_delimiter = ',')]
    trusted_proxy: Vec<std::net::IpAddr>,
    /// Serve Prometheus metrics at GET /metrics on this address (port 0 picks one; the
    /// address is printed). Off unless given, so metrics are never public by accident.
    #[arg(long, env = "NATTER_METRICS_BIND")]
    metrics_bind: Option<SocketAddr>,
    /// Serve TLS (https, wss) on the --bind port with this PEM certificate chain, server
    /// certificate first; needs --tls-key. Without both, the port is plain HTTP, as behind a
    /// reverse proxy that terminates TLS. SIGHUP rereads both files.
    #[arg(
        long,
        env = "NATTER_TLS_CERT",
        value_name = "PEM",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert's certificate; needs --tls-cert.
    #[arg(
        long,
        env = "NATTER_TLS_KEY",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
    /// Longest message, in characters.
    #[arg(long, env = "NATTER_MAX_MESSAGE_CHARS", default_value_t = natter_shared::validate::MAX_TEXT_CHARS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_message_chars: usize,
    /// Frames queued per connection; a reader that falls further behind is sent the rest
    /// from the database, so nobody is disconnected for it.
    #[arg(long, env = "NATTER_QUEUE_CAPACITY", default_value_t = config::DEFAULT_QUEUE_CAPACITY)]
    queue_capacity: usize,
    /// Seconds a WebSocket may stay silent (no frame, no pong) before it is dropped; the
    /// server pings at a third of this.
    #[arg(long, env = "NATTER_IDLE_TIMEOUT", default_value_t = config::DEFAULT_IDLE_TIMEOUT_SECS, value_parser = clap::value_parser!(u64).range(1..))]
    idle_timeout: u64,
    /// Seconds a WebSocket may accept no data (a client that stopped reading) before it is
    /// closed with 1008 and its slot freed.
    #[arg(long, env = "NATTER_WRITE_TIMEOUT", default_value_t = config::DEFAULT_WRITE_TIMEOUT_SECS, value_parser = clap::value_parser!(u64).range(1..))]
    write_timeout: u64,
    /// Connect this instance to the others through this Redis server,
    /// redis://HOST:PORT[/DB]; needs a PostgreSQL --db that they all share. Without it the
    /// instance works alone.
    #[arg(long, env = "NATTER_BUS", value_name = "URL", value_parser = bus_url)]
    bus: Option<String>,
    /// Prefix of every Redis key and channel natter uses, so several deployments (or test
    /// runs) can share one Redis server.
    #[arg(
        long,
        env = "NATTER_BUS_PREFIX",
        value_parser = bus_prefix,
        default_value = "natter",
        value_name = "PREFIX"
    )]
    bus_prefix: String,
    /// This instance's name in logs, presence bookkeeping and metrics [default: HOST:PORT].
    #[arg(long, env = "NATTER_INSTANCE_NAME", value_name = "NAME", value_parser = instance_name)]
    instance_name: Option<String>,
    /// Test only (hidden): cap the database at this many pages so tests can fill it.
    #[arg(long, hide = true)]
    test_max_page_count: Option<u32>,
    /// Test only (hidden): PostgreSQL answers this many committed batches as lost.
    #[arg(long, hide = true, default_value_t = 0)]
    test_lost_commit_answers: u32,
    /// Test only (hidden): abort right after the first commit that stores a message.
    #[arg(long, hide = true)]
    test_die_after_commit: bool,
}

/// Checks `--bus` as it is parsed, so a bad URL is a usage error (exit 2).
fn bus_url(s: &str) -> Result<String, crate::bus::BusArgError> {
    crate::bus::check_bus_url(s)
}

/// Checks `--bus-prefix` as it is parsed.
fn bus_prefix(s: &str) -> Result<String, crate::bus::BusArgError> {
    crate::bus::check_bus_prefix(s)
}

/// Checks `--instance-name` as it is parsed.
fn instance_name(s: &str) -> Result<String, crate::bus::BusArgError> {
    crate::bus::check_instance_name(s).map(|()| s.to_owned())
}

/// Parses `--db`: a `postgres://` URL, else a path (which, as before, need not be UTF-8).
#[derive(Clone)]
struct DbArg;

impl clap::builder::TypedValueParser for DbArg {
    type Value = DbTarget;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<DbTarget, clap::Error> {
        match value.to_str() {
            Some(s) => DbTarget::parse(s).map_err(|e| {
                clap::Error::raw(
                    clap::error::ErrorKind::ValueValidation,
                    format!("invalid value for --db: {e}\n"),
                )
                .with_cmd(cmd)
            }),
            None => Ok(DbTarget::Sqlite(PathBuf::from(value))),
        }
    }
}

/// Log targets that print message text (direct messages included) or credentials, and the
/// most important level at which they do: tungstenite logs every message it reads
/// ("Received message {text}") and every frame's payload in hex at trace (its debug events
/// are handshake and close-frame lines only); tokio-postgres logs every statement's
/// parameters (texts, password hashes, token hashes) at debug, through `log`. (hyper logs
/// sizes, not bytes, and is built without its `tracing` feature; redis-rs logs no commands.)
const PAYLOAD_TARGETS: [(&str, tracing::Level); 3] = [
    ("tungstenite", tracing::Level::TRACE),
    ("tokio_tungstenite", tracing::Level::TRACE),
    ("tokio_postgres::query", tracing::Level::DEBUG),
];

/// Whether `meta` is an event of one of [`PAYLOAD_TARGETS`] at its level or below (targets
/// are module paths, e.g. `tungstenite::protocol`).
fn may_print_payload(meta: &tracing::Metadata<'_>) -> bool {
    PAYLOAD_TARGETS.iter().any(|(prefix, from)| {
        // tracing orders levels by verbosity: TRACE is the greatest.
        *meta.level() >= *from
            && meta
                .target()
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// The binary's whole run, from its command line (`args`, the program's name first): flags,
/// logging, then serving until SIGINT/SIGTERM (or a tool subcommand instead). `main.rs`
/// calls it with the process's arguments; the client's end-to-end tests call it in a child
/// process of their own, so that they need no server binary built.
pub fn main_from<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use tracing_subscriber::filter::{FilterExt, filter_fn};
    use tracing_subscriber::prelude::*;
    let args = match crate::cli::parse_from::<Args, _, _>(args) {
        Ok(args) => args,
        Err(code) => return code,
    };
    if let Some(tool) = args.tool {
        return tool.run(Args::command());
    }
    let requested = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // A ceiling RUST_LOG cannot raise: a directive appended to the EnvFilter would lose to
    // a more specific one such as `tungstenite::protocol=trace`.
    let filter = requested.and(filter_fn(|meta| !may_print_payload(meta)));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                // Colour codes only for a person at a terminal, not in a log file.
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_filter(filter),
        )
        .init();
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("natter-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn serve(args: Args) -> anyhow::Result<()> {
    if args.test_max_page_count.is_some() && matches!(args.db, DbTarget::Postgres(_)) {
        anyhow::bail!(
            "--test-max-page-count applies to SQLite files only, not to {}",
            args.db
        );
    }
    let mut config = Config::new(args.db.clone());
    config.bus = match &args.bus {
        None => None,
        Some(url) => Some(BusTarget::parse(url, &args.bus_prefix)?),
    };
    if config.bus.is_some() && matches!(args.db, DbTarget::Sqlite(_)) {
        anyhow::bail!("{}", crate::error::OpenError::BusNeedsPostgres);
    }
    config.instance_name = args.instance_name.clone();
    config.die_after_commit = args.test_die_after_commit;
    config.rate_per_sec = args.rate_limit;
    config.rate_burst = args.rate_burst;
    config.login_burst = args.login_burst;
    config.max_connections = args.max_connections;
    config.max_connections_per_user =
        usize::try_from(args.max_connections_per_user).unwrap_or(usize::MAX);
    config.max_http_connections = usize::try_from(args.max_http_connections).unwrap_or(usize::MAX);
    config.request_timeout = std::time::Duration::from_secs(args.request_timeout);
    config.register_burst = args.register_burst;
    config.trusted_proxies = args.trusted_proxy;
    raise_open_files_limit(config.max_connections + config.max_http_connections);
    config.max_text_chars = args.max_message_chars;
    config.queue_capacity = args.queue_capacity;
    config.idle_timeout = std::time::Duration::from_secs(args.idle_timeout);
    config.ping_interval = config.idle_timeout / 3;
    config.write_timeout = std::time::Duration::from_secs(args.write_timeout);
    config.max_page_count = args.test_max_page_count;
    config.lost_commit_answers = args.test_lost_commit_answers;
    // clap's `requires` makes these both or neither.
    config.tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        _ => None,
    };
    let is_tls = config.tls.is_some();
    // The recorder before the server, whose metric handles would otherwise be no-ops.
    let metrics = match args.metrics_bind {
        None => None,
        Some(bind) => {
            let handle = crate::metrics::install().context("starting metrics")?;
            let listener = tokio::net::TcpListener::bind(bind)
                .await
                .with_context(|| format!("cannot listen on {bind} for metrics"))?;
            Some((listener, handle))
        }
    };
    // The TLS files and the database first: a file that cannot be used is an error before
    // anything listens, so "listening on" below always means ready.
    let server = Server::open(config)?;
    // Before "listening on" too: until a handler is installed, SIGHUP ends the process.
    if let Some(reloader) = server.tls_reloader() {
        reload_on_hangup(reloader)?;
    }
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}; is another server using it?",
                args.bind
            )
        })?;
    let addr = listener.local_addr().context("reading the bound address")?;
    // One plain line on stdout, for people and for scripts that need the port.
    // Scripts read the address up to the first comma; anything new goes at the end.
    println!(
        "natter-server listening on {addr}, database {}{}",
        args.db,
        if is_tls { ", TLS" } else { "" }
    );
    tracing::info!(%addr, db = %args.db, tls = is_tls, "listening");
    if let Some((listener, handle)) = metrics {
        let metrics_addr = listener
            .local_addr()
            .context("reading the metrics address")?;
        // A second line, after the one scripts already read.
        println!("natter-server metrics on http://{metrics_addr}/metrics");
        tracing::info!(%metrics_addr, "metrics");
        tokio::spawn(crate::metrics::serve(listener, handle));
    }
    server.serve(listener, shutdown_signal()).await;
    Ok(())
}

/// Raises the open-files soft limit to the hard limit (a server holds a descriptor per
/// connection, and the common default of 1,024 is far below `--max-connections`), and logs
/// it, with a warning when the connection caps cannot fit under it.
fn raise_open_files_limit(wanted: usize) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            tracing::info!(limit, "open-files limit");
            // Room for the database, the listener and the log beyond the connections.
            let needed = u64::try_from(wanted).unwrap_or(u64::MAX).saturating_add(64);
            if limit < needed {
                tracing::warn!(
                    limit,
                    needed,
                    "open-files limit is below --max-connections + --max-http-connections; \
                     raise it (ulimit -n, or LimitNOFILE= in systemd) or lower the caps"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read or raise the open-files limit"),
    }
}

/// Rereads the TLS certificate and key on every SIGHUP, for as long as the process runs
/// (`CertReloader::reload` logs how each went). Without TLS nothing listens for SIGHUP, so
/// it keeps its default meaning.
fn reload_on_hangup(reloader: CertReloader) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                let reloader = reloader.clone();
                // File reads: off the threads that run connections. The outcome is logged.
                let _ = tokio::task::spawn_blocking(move || reloader.reload()).await;
            }
        });
    }
    #[cfg(not(unix))]
    let _ = reloader;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
