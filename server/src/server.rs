//! The accept loop and the server's life: start, serve, shut down.
//!
//! [`Server::open`] reads the TLS files and opens the database (so a bad file is an error
//! before anything listens); [`Server::serve`] owns the listener. Each TCP connection gets a
//! task: the TLS handshake when serving TLS, then hyper HTTP/1 (with upgrades);
//! WebSocket tasks are spawned by the upgrade handler onto the same `TaskTracker`. On
//! shutdown: stop accepting, cancel the token (WebSocket tasks send close 1001), let hyper
//! finish in-flight requests, wait for all tasks up to the grace period, then let the store
//! writer drain its queue and stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Authenticator;
use crate::bus::{Bus, Feed};
use crate::config::Config;
use crate::error::OpenError;
use crate::http::canned::CannedErrors;
use crate::hub::Hub;
use crate::limits::{ConnectionLimits, HttpSlot};
use crate::rate::RateLimiter;
use crate::state::AppState;
use crate::store::{DbTarget, Store, WriterHandle};
use crate::tls::{CertReloader, Tls};

/// How long a connection past the HTTP cap may take to send its one request's head.
const OVER_CAP_TIMEOUT: Duration = Duration::from_secs(2);

/// A server with its database open, ready to serve.
pub struct Server {
    state: Arc<AppState>,
    writer: WriterHandle,
    /// The TLS acceptor and certificate, when serving TLS.
    tls: Option<Tls>,
}

impl Server {
    /// Reads the TLS files if any, opens (creating and migrating if needed) the database and
    /// builds the shared state.
    pub fn open(config: Config) -> Result<Server, OpenError> {
        // TLS first: reading two files changes nothing, while opening the database may
        // create it, which a typo in a certificate path should not.
        let tls = config.tls.clone().map(Tls::load).transpose()?;
        if config.bus.is_some() && matches!(config.db, DbTarget::Sqlite(_)) {
            return Err(OpenError::BusNeedsPostgres);
        }
        let bus = Arc::new(Bus::new(config.bus.clone()));
        let hub = Arc::new(
            Hub::new(config.queue_capacity, config.recent_bytes)
                .reporting_presence(bus.presence_reports()),
        );
        let feed = Arc::new(Feed::new(Arc::clone(&hub), Arc::clone(&bus)));
        let (store, writer) = Store::open(
            &config.db,
            crate::store::TestHooks {
                max_page_count: config.max_page_count,
                lost_commit_answers: config.lost_commit_answers,
                die_after_commit: config.die_after_commit,
            },
            Arc::clone(&feed) as crate::store::OnCommit,
        )?;
        // Computed now, so the first login for an unknown name does not pay for it.
        crate::auth::decoy_hash();
        let state = Arc::new(AppState {
            auth: Authenticator::new(store.clone(), config.bus.is_some()),
            limiter: RateLimiter::new(f64::from(config.rate_per_sec), config.rate_burst),
            login_limiter: RateLimiter::new(
                per_interval(config.login_burst, config.login_refill),
                config.login_burst,
            ),
            // Ten times looser: many addresses together may lock a name out, one cannot.
            login_name_limiter: RateLimiter::new(
                10.0 * per_interval(config.login_burst, config.login_refill),
                config.login_burst.saturating_mul(10),
            ),
            login_ip_limiter: RateLimiter::new(
                10.0 * per_interval(config.login_burst, config.login_refill),
                config.login_burst.saturating_mul(10),
            ),
            register_limiter: RateLimiter::new(
                per_interval(config.register_burst, config.register_refill),
                config.register_burst,
            ),
            limits: ConnectionLimits::new(&config),
            metrics: crate::metrics::Metrics::new(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            store,
            hub,
            feed,
            bus,
            config,
        });
        Ok(Server { state, writer, tls })
    }

    /// The handle that reloads the TLS certificate and key from their files (`main` calls it
    /// on SIGHUP); `None` when serving plain HTTP.
    pub fn tls_reloader(&self) -> Option<CertReloader> {
        self.tls.as_ref().map(Tls::reloader)
    }

    /// Serves on `listener` until `shutdown` completes, then shuts down gracefully.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let Server { state, writer, tls } = self;
        tokio::pin!(shutdown);
        let instance = match (&state.config.instance_name, listener.local_addr()) {
            (Some(name), _) => name.clone(),
            (None, Ok(addr)) => format!("{}:{}", crate::bus::hostname(), addr.port()),
            (None, Err(_)) => crate::bus::hostname(),
        };
        metrics::gauge!(crate::metrics::INSTANCE, "instance" => instance.clone()).set(1.0);
        crate::bus::start(&state, &instance);

        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => {
                    let (tcp, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Usually out of file descriptors: back off instead of spinning.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = tcp.set_nodelay(true);
                    // An HTTP slot from here until the connection closes or upgrades (the
                    // upgraded socket then holds a WebSocket slot instead); through the TLS
                    // handshake too.
                    let slot = match state.limits.http_slot() {
                        HttpSlot::Normal(slot) => slot,
                        HttpSlot::OverCap(slot) => {
                            serve_over_cap(&state, tls.as_ref(), tcp, peer, slot);
                            continue;
                        }
                        HttpSlot::Refused => {
                            tracing::debug!(%peer, "at the HTTP connection cap; closed unread");
                            continue;
                        }
                    };
                    let conn_state = Arc::clone(&state);
                    // Two kinds of task rather than one with a branch inside, so a plain
                    // connection's task holds no room for TLS state.
                    match &tls {
                        None => state.tasks.spawn(serve_http(conn_state, tcp, peer, slot)),
                        Some(tls) => {
                            let acceptor = tls.acceptor().clone();
                            state.tasks.spawn(serve_tls(conn_state, acceptor, tcp, peer, slot))
                        }
                    };
                }
            }
        }

        tracing::info!("shutting down");
        drop(listener);
        state.shutdown.cancel();
        state.tasks.close();
        let grace = state.config.shutdown_grace;
        let drained = tokio::time::timeout(grace, state.tasks.wait()).await;
        if drained.is_err() {
            tracing::warn!("some connections did not close within {grace:?}");
            return;
        }
        // Every task is done, so this is the last `Store` handle: dropping it lets the writer
        // commit what is queued and exit.
        drop(state);
        writer.finished().await;
        tracing::info!("stopped");
    }
}

/// A token bucket's refill rate for "one per `interval`", or 0 (no limit) when `burst` is 0.
fn per_interval(burst: u32, interval: Duration) -> f64 {
    if burst == 0 {
        0.0
    } else {
        1.0 / interval.as_secs_f64()
    }
}

/// Serves HTTP/1 (with upgrades) on an accepted connection, plain or TLS, until it closes,
/// upgrades, or shutdown asks it to finish; `slot` is held until then.
async fn serve_http<IO>(
    state: Arc<AppState>,
    io: IO,
    peer: SocketAddr,
    slot: tokio::sync::OwnedSemaphorePermit,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let _slot = slot;
    let service_state = Arc::clone(&state);
    let service = service_fn(move |req| crate::http::handle(req, Arc::clone(&service_state), peer));
    let conn = http1::Builder::new()
        // A client that never finishes its headers (or idles between requests) must not
        // hold a connection forever; the body has its own deadline in `read_body`.
        .timer(TokioTimer::new())
        .header_read_timeout(state.config.request_timeout)
        // Below hyper, so it sees (and rewrites) plaintext, whatever the transport.
        .serve_connection(TokioIo::new(CannedErrors::new(io)), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = state.shutdown.cancelled() => {
            // Finish the request in flight, then close; idle keep-alive connections close
            // at once.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "http connection ended with an error");
    }
}

/// The TLS handshake, then [`serve_http`] over the session; `slot` is held throughout. This
/// runs in the connection's own task, bounded by the request timeout: in the accept loop,
/// one client that never finishes its handshake would stop everyone else being accepted.
async fn serve_tls(
    state: Arc<AppState>,
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    slot: tokio::sync::OwnedSemaphorePermit,
) {
    let timeout = state.config.request_timeout;
    if let Some(io) = handshake(&acceptor, tcp, peer, timeout, &state.shutdown).await {
        serve_http(state, io, peer, slot).await;
    }
}

/// The TLS session on `tcp`, or `None` when the client does not complete a handshake
/// within `timeout` (or shutdown starts first). Failures are the client's (a plain-HTTP
/// request, a scanner, a CA it does not trust), so they are logged at debug only.
async fn handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    timeout: Duration,
    stop: &CancellationToken,
) -> Option<TlsStream<TcpStream>> {
    tokio::select! {
        done = tokio::time::timeout(timeout, acceptor.accept(tcp)) => match done {
            Ok(Ok(io)) => Some(io),
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake not finished in time; closed");
                None
            }
        },
        () = stop.cancelled() => None,
    }
}

/// Answers one request on a connection past the HTTP cap (see `http::over_cap`), quickly,
/// then closes it; over TLS after a handshake with the same short deadline.
fn serve_over_cap(
    state: &Arc<AppState>,
    tls: Option<&Tls>,
    tcp: TcpStream,
    peer: SocketAddr,
    slot: tokio::sync::OwnedSemaphorePermit,
) {
    match tls {
        None => state.tasks.spawn(async move {
            answer_over_cap(tcp).await;
            drop(slot);
        }),
        Some(tls) => {
            let acceptor = tls.acceptor().clone();
            let stop = state.shutdown.clone();
            state.tasks.spawn(async move {
                if let Some(io) = handshake(&acceptor, tcp, peer, OVER_CAP_TIMEOUT, &stop).await {
                    answer_over_cap(io).await;
                }
                drop(slot);
            })
        }
    };
}

/// The one over-cap request and its answer, bounded in time.
async fn answer_over_cap<IO>(io: IO)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service =
        service_fn(
            |req| async move { Ok::<_, std::convert::Infallible>(crate::http::over_cap(&req)) },
        );
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(OVER_CAP_TIMEOUT)
        .keep_alive(false)
        .serve_connection(TokioIo::new(CannedErrors::new(io)), service);
    let _ = tokio::time::timeout(2 * OVER_CAP_TIMEOUT, conn).await;
}
