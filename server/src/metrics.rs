//! Prometheus metrics: what is measured, under which names, and the `/metrics` listener.
//!
//! Recording goes through the `metrics` facade; `main` installs the Prometheus recorder
//! (metrics-exporter-prometheus, without its own HTTP listener) only when `--metrics-bind`
//! is given, and [`serve`] answers `GET /metrics` on that separate address, so metrics are
//! never public by accident. Without a recorder every handle is a no-op.
//!
//! The hot paths hold handles ([`Metrics`], built once) rather than looking names up per
//! event, and a connection adds up its deliveries and bytes per batch, not per frame.
//! Names follow Prometheus conventions: `natter_…_total` for counters, base units
//! (`_seconds`, `_bytes`).

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use crate::error::ServerError;

/// Open WebSocket connections.
pub const CONNECTIONS_OPEN: &str = "natter_connections_open";
/// Users with at least one open WebSocket.
pub const USERS_ONLINE: &str = "natter_users_online";
/// Messages stored, by `transport` (`ws`, `rest`).
pub const MESSAGES_STORED: &str = "natter_messages_stored_total";
/// Chat messages written to sockets (one per receiving connection).
pub const DELIVERIES: &str = "natter_deliveries_total";
/// Bytes of frames written to WebSockets.
pub const SENT_BYTES: &str = "natter_websocket_sent_bytes_total";
/// Connections catching up right now.
pub const LAGGING: &str = "natter_lagging_connections";
/// Times a connection fell behind and caught up from the hub's recent frames or the store.
pub const CATCH_UPS: &str = "natter_catch_ups_total";
/// WebSockets closed, by `reason`.
pub const CLOSED: &str = "natter_connections_closed_total";
/// Writes per committed batch.
pub const COMMIT_BATCH: &str = "natter_commit_batch_size";
/// Time to apply and commit one batch.
pub const COMMIT_SECONDS: &str = "natter_commit_duration_seconds";
/// From a send's arrival to its acknowledgement, by `transport`.
pub const SEND_ACK_SECONDS: &str = "natter_send_ack_seconds";
/// HTTP requests, by `route` and `status`.
pub const HTTP_REQUESTS: &str = "natter_http_requests_total";
/// Requests refused for a missing or bad token, or a wrong password.
pub const AUTH_FAILURES: &str = "natter_auth_failures_total";
/// Refusals by a rate limit, by `limit` (`send`, `login`, `register`).
pub const RATE_LIMITED: &str = "natter_rate_limited_total";

/// 1, labelled with this instance's name (`--instance-name`).
pub const INSTANCE: &str = "natter_instance_info";
/// 1 while the Redis bus is connected.
pub const BUS_CONNECTED: &str = "natter_bus_connected";
/// 1 while a configured bus is out of reach and other instances' messages arrive by polling
/// PostgreSQL.
pub const BUS_POLLING: &str = "natter_bus_polling";
/// Gaps in the bus filled from PostgreSQL.
pub const BUS_GAP_FILLS: &str = "natter_bus_gap_fills_total";
/// From a message's creation on another instance to its delivery here through the bus.
pub const BUS_LAG_SECONDS: &str = "natter_bus_lag_seconds";
/// Messages or revocations not published because the publisher's queue was full.
pub const BUS_DROPPED: &str = "natter_bus_dropped_total";

/// Counts auth failures and rate-limit refusals (REST and WebSocket alike).
pub fn count_refusal(e: &ServerError) {
    match e {
        ServerError::Unauthorized(_) | ServerError::InvalidCredentials => {
            metrics::counter!(AUTH_FAILURES).increment(1);
        }
        ServerError::RateLimited => metrics::counter!(RATE_LIMITED, "limit" => "send").increment(1),
        ServerError::LoginThrottled => {
            metrics::counter!(RATE_LIMITED, "limit" => "login").increment(1);
        }
        ServerError::RegistrationThrottled => {
            metrics::counter!(RATE_LIMITED, "limit" => "register").increment(1);
        }
        _ => {}
    }
}

/// Installs the Prometheus recorder; call before [`crate::Server::open`], whose handles are
/// no-ops otherwise.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    let seconds = [
        0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
    ];
    let sizes = [
        1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2048.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)?
        .set_buckets_for_metric(Matcher::Full(COMMIT_BATCH.into()), &sizes)?
        .install_recorder()?;
    describe();
    Ok(handle)
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(CONNECTIONS_OPEN, "Open WebSocket connections.");
    describe_gauge!(USERS_ONLINE, "Users with at least one open WebSocket.");
    describe_counter!(MESSAGES_STORED, "Messages stored, by transport.");
    describe_counter!(DELIVERIES, "Chat messages written to sockets.");
    describe_counter!(
        SENT_BYTES,
        Unit::Bytes,
        "Bytes of frames written to WebSockets."
    );
    describe_gauge!(LAGGING, "Connections catching up right now.");
    describe_counter!(CATCH_UPS, "Times a connection fell behind and caught up.");
    describe_counter!(CLOSED, "WebSockets closed, by reason.");
    describe_histogram!(COMMIT_BATCH, "Writes per committed batch.");
    describe_histogram!(
        COMMIT_SECONDS,
        Unit::Seconds,
        "Time to apply and commit a batch."
    );
    describe_histogram!(
        SEND_ACK_SECONDS,
        Unit::Seconds,
        "From a send's arrival to its acknowledgement, by transport."
    );
    describe_counter!(HTTP_REQUESTS, "HTTP requests, by route and status.");
    describe_counter!(
        AUTH_FAILURES,
        "Requests refused for a bad token or password."
    );
    describe_counter!(RATE_LIMITED, "Refusals by a rate limit, by limit.");
    describe_gauge!(INSTANCE, "1, labelled with this instance's name.");
    describe_gauge!(BUS_CONNECTED, "1 while the Redis bus is connected.");
    describe_gauge!(
        BUS_POLLING,
        "1 while the bus is out of reach and other instances' messages arrive by polling."
    );
    describe_counter!(BUS_GAP_FILLS, "Gaps in the bus filled from PostgreSQL.");
    describe_histogram!(
        BUS_LAG_SECONDS,
        Unit::Seconds,
        "From a message's creation on another instance to its delivery here by the bus."
    );
    describe_counter!(
        BUS_DROPPED,
        "Batches or revocations not published: the publisher's queue was full."
    );
}

/// Handles for the hot paths, looked up once.
pub struct Metrics {
    /// [`DELIVERIES`].
    pub deliveries: Counter,
    /// [`SENT_BYTES`].
    pub sent_bytes: Counter,
    /// [`CONNECTIONS_OPEN`].
    pub connections_open: Gauge,
    /// [`USERS_ONLINE`].
    pub users_online: Gauge,
    /// [`LAGGING`].
    pub lagging: Gauge,
    /// [`CATCH_UPS`].
    pub catch_ups: Counter,
    /// [`MESSAGES_STORED`] over WebSocket.
    pub stored_ws: Counter,
    /// [`MESSAGES_STORED`] over REST.
    pub stored_rest: Counter,
    /// [`SEND_ACK_SECONDS`] over WebSocket.
    pub ack_ws: Histogram,
    /// [`SEND_ACK_SECONDS`] over REST.
    pub ack_rest: Histogram,
}

impl Metrics {
    /// Handles on the installed recorder (no-ops without one).
    pub fn new() -> Self {
        Metrics {
            deliveries: metrics::counter!(DELIVERIES),
            sent_bytes: metrics::counter!(SENT_BYTES),
            connections_open: metrics::gauge!(CONNECTIONS_OPEN),
            users_online: metrics::gauge!(USERS_ONLINE),
            lagging: metrics::gauge!(LAGGING),
            catch_ups: metrics::counter!(CATCH_UPS),
            stored_ws: metrics::counter!(MESSAGES_STORED, "transport" => "ws"),
            stored_rest: metrics::counter!(MESSAGES_STORED, "transport" => "rest"),
            ack_ws: metrics::histogram!(SEND_ACK_SECONDS, "transport" => "ws"),
            ack_rest: metrics::histogram!(SEND_ACK_SECONDS, "transport" => "rest"),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// How often histograms are drained into their buckets between scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Answers `GET /metrics` on `listener` for as long as the process runs (other paths 404),
/// and keeps the recorder's upkeep going.
pub async fn serve(listener: TcpListener, handle: PrometheusHandle) {
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_EVERY);
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let handle = handle.clone();
        let service = service_fn(move |req: Request<Incoming>| {
            let handle = handle.clone();
            async move { Ok::<_, Infallible>(answer(&req, &handle)) }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10))
            .serve_connection(TokioIo::new(tcp), service);
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(60), conn).await;
        });
    }
}

fn answer(req: &Request<Incoming>, handle: &PrometheusHandle) -> Response<Full<Bytes>> {
    let (status, body, kind) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            handle.render(),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        _ => (
            StatusCode::NOT_FOUND,
            r#"{"error":{"code":"not_found","message":"this address serves GET /metrics only"}}"#
                .to_owned(),
            "application/json",
        ),
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    r
}
