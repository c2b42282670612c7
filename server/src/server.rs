//! The accept loop and the server's life: start, serve, shut down.
//!
//! [`Server::open`] opens the database (so a bad file is an error before anything listens);
//! [`Server::serve`] owns the listener. Each TCP connection gets a hyper HTTP/1 task (with upgrades);
//! WebSocket tasks are spawned by the upgrade handler onto the same `TaskTracker`. On
//! shutdown: stop accepting, cancel the token (WebSocket tasks send close 1001), let hyper
//! finish in-flight requests, wait for all tasks up to the grace period, then let the store
//! writer drain its queue and stop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::http::canned::CannedErrors;
use crate::hub::Hub;
use crate::limits::{ConnectionLimits, HttpSlot};
use crate::rate::RateLimiter;
use crate::state::AppState;
use crate::store::{Store, StoreError};

/// How long a connection past the HTTP cap may take to send its one request's head.
const OVER_CAP_TIMEOUT: Duration = Duration::from_secs(2);

/// A server with its database open, ready to serve.
pub struct Server {
    state: Arc<AppState>,
    writer: std::thread::JoinHandle<()>,
}

impl Server {
    /// Opens (creating and migrating if needed) the database and builds the shared state.
    pub fn open(config: Config) -> Result<Server, StoreError> {
        let hub = Arc::new(Hub::new(config.queue_capacity, config.recent_bytes));
        let publisher = Arc::clone(&hub);
        let (store, writer) = Store::open(
            &config.db_path,
            config.max_page_count,
            Box::new(move |messages| publisher.publish(messages)),
        )?;
        hub.stored_up_to(store.newest_message_id()?);
        // Computed now, so the first login for an unknown name does not pay for it.
        crate::auth::decoy_hash();
        let state = Arc::new(AppState {
            auth: Authenticator::new(store.clone()),
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
            config,
        });
        Ok(Server { state, writer })
    }

    /// Serves on `listener` until `shutdown` completes, then shuts down gracefully.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let Server { state, writer } = self;
        tokio::pin!(shutdown);

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
                    let slot = match state.limits.http_slot() {
                        HttpSlot::Normal(slot) => slot,
                        HttpSlot::OverCap(slot) => {
                            serve_over_cap(&state, tcp, slot);
                            continue;
                        }
                        HttpSlot::Refused => {
                            tracing::debug!(%peer, "at the HTTP connection cap; closed unread");
                            continue;
                        }
                    };
                    let conn_state = Arc::clone(&state);
                    let service = service_fn(move |req| crate::http::handle(req, Arc::clone(&conn_state), peer));
                    let conn = http1::Builder::new()
                        // A client that never finishes its headers (or idles between
                        // requests) must not hold a connection forever; the body has its own
                        // deadline in `read_body`.
                        .timer(TokioTimer::new())
                        .header_read_timeout(state.config.request_timeout)
                        .serve_connection(TokioIo::new(CannedErrors::new(tcp)), service)
                        .with_upgrades();
                    let stop = state.shutdown.clone();
                    state.tasks.spawn(async move {
                        // An HTTP slot until the connection closes or upgrades (the upgraded
                        // socket then holds a WebSocket slot).
                        let _slot = slot;
                        tokio::pin!(conn);
                        let result = tokio::select! {
                            r = conn.as_mut() => r,
                            () = stop.cancelled() => {
                                // Finish the request in flight, then close; idle keep-alive
                                // connections close at once.
                                conn.as_mut().graceful_shutdown();
                                conn.await
                            }
                        };
                        if let Err(e) = result {
                            tracing::debug!(%peer, error = %e, "http connection ended with an error");
                        }
                    });
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
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
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

/// Answers one request on a connection past the HTTP cap (see `http::over_cap`), quickly,
/// then closes it.
fn serve_over_cap(
    state: &Arc<AppState>,
    tcp: tokio::net::TcpStream,
    slot: tokio::sync::OwnedSemaphorePermit,
) {
    let service =
        service_fn(
            |req| async move { Ok::<_, std::convert::Infallible>(crate::http::over_cap(&req)) },
        );
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(OVER_CAP_TIMEOUT)
        .keep_alive(false)
        .serve_connection(TokioIo::new(CannedErrors::new(tcp)), service);
    state.tasks.spawn(async move {
        let _ = tokio::time::timeout(2 * OVER_CAP_TIMEOUT, conn).await;
        drop(slot);
    });
}
