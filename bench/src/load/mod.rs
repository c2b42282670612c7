//! The load: open connections, send for a while, count what arrives.
//!
//! A [`Session`] is a set of open WebSocket connections, each with a reader task
//! ([`crate::reader`]) that scans every text frame for a [`Marker`], records its latency
//! into that connection's [`Tally`] and notes whether the server cut the connection. [`Session::run`] then makes some of them send, paced by a rate (stamped with the
//! actual send time; a sender that cannot keep its schedule shows as `sent < intended`) or
//! by a window of unacknowledged messages (the echo frees a slot), stops them at the
//! deadline, waits a bounded time for the last deliveries, and reports.
//!
//! Beside it: `conn.rs` (one connection: opening it, what it may receive) and `sender.rs`
//! (one sender task and its pacing).
//!
//! Every network wait has a timeout, so a dead server ends a run with cuts and errors, never
//! a hang.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::stats::{Percentiles, Report, Tally, round3};

mod conn;
mod sender;

pub use conn::{Accept, ConnSpec, to_everyone};
use conn::{CONNECT_CONCURRENCY, Conn, connect_one};
use sender::SenderCtx;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type WsSink = SplitSink<Ws, Message>;

/// Phase ids are unique in the process, so a late delivery from an earlier run (a message
/// still in natter's commit queue) never counts in a later one.
static NEXT_PHASE: AtomicU32 = AtomicU32::new(1);

/// How senders are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// Messages per second per sender.
    Rate(f64),
    /// Unacknowledged messages per sender.
    Window(usize),
}

/// One measurement.
#[derive(Debug, Clone)]
pub struct Phase {
    /// Indices of the sending connections.
    pub senders: Vec<usize>,
    /// Their pacing.
    pub pace: Pace,
    /// How long they send.
    pub duration: Duration,
    /// Longest wait for outstanding deliveries after sending stops.
    pub drain: Duration,
    /// Deliveries each message should produce.
    pub deliveries_per_message: u64,
    /// Text length of each message, padding included.
    pub text_bytes: usize,
    /// Most messages per sender (window pacing only); `None` for no limit.
    pub limit: Option<u64>,
}

/// Open connections.
pub struct Session {
    conns: Vec<Conn>,
    phase: Arc<AtomicU32>,
    connect_s: f64,
    connect_latency: Percentiles,
    connect_errors: u64,
}

impl Session {
    /// Opens every connection (at most `CONNECT_CONCURRENCY` at a time) and waits for
    /// each one's `ready`. Connections that fail are counted as errors and left out.
    pub async fn connect(specs: Vec<ConnSpec>) -> Session {
        let phase = Arc::new(AtomicU32::new(0));
        let read_buffer = if specs.len() > 1000 {
            4 * 1024
        } else {
            32 * 1024
        };
        let started = Instant::now();
        let results: Vec<(anyhow::Result<Conn>, u64)> = futures_util::stream::iter(specs)
            .map(|spec| {
                let phase = Arc::clone(&phase);
                async move {
                    let t = Instant::now();
                    let r = connect_one(spec, phase, read_buffer).await;
                    (
                        r,
                        u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX),
                    )
                }
            })
            .buffered(CONNECT_CONCURRENCY)
            .collect()
            .await;
        let connect_s = started.elapsed().as_secs_f64();
        let mut hist = Tally::default();
        let mut conns = Vec::with_capacity(results.len());
        let mut connect_errors = 0;
        let mut first_error = None;
        for (r, us) in results {
            match r {
                Ok(c) => {
                    hist.record(us, false);
                    conns.push(c);
                }
                Err(e) => {
                    connect_errors += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            eprintln!("natter-bench: {connect_errors} connection(s) failed; first: {e:#}");
        }
        Session {
            conns,
            phase,
            connect_s,
            connect_latency: Percentiles::of(hist.delivery_us.as_ref()),
            connect_errors,
        }
    }

    /// Connections open (and still alive).
    pub fn open_count(&self) -> usize {
        self.conns
            .iter()
            .filter(|c| c.shared.alive.load(Ordering::Relaxed))
            .count()
    }

    /// A report with the connection figures and no traffic: for idle-connection runs.
    pub fn idle_report(&self, requested: usize) -> Report {
        let mut total = Tally::default();
        for c in &self.conns {
            total.merge(&c.shared.tally());
        }
        Report {
            connections: requested,
            connect_s: round3(self.connect_s),
            connect_latency: self.connect_latency,
            errors: self.connect_errors + total.errors,
            closed_by_server: total.closed_by_server,
            ..Report::default()
        }
    }

    /// Connections the server has closed since they were opened.
    fn cut_count(&self) -> u64 {
        let cut = self
            .conns
            .iter()
            .filter(|c| c.shared.cut.load(Ordering::Relaxed));
        cut.count() as u64
    }

    /// Runs one phase and reports it (the `target`, `scenario` and RSS fields are the
    /// caller's to fill).
    pub async fn run(&mut self, phase: &Phase) -> Report {
        let id = NEXT_PHASE.fetch_add(1, Ordering::Relaxed);
        // A connection cut before the phase starts (its count is about to be reset) gets
        // nothing in it either, so it counts as cut in this phase too.
        let cut_before = self.cut_count();
        for c in &self.conns {
            *c.shared.tally() = Tally::default();
        }
        self.phase.store(id, Ordering::Relaxed);
        let window = match phase.pace {
            Pace::Window(w) => w,
            Pace::Rate(_) => 0,
        };
        let started = Instant::now();
        let deadline = started + phase.duration;
        let mut tasks = Vec::new();
        let mut send_errors = 0;
        for &i in &phase.senders {
            let Some(conn) = self.conns.get_mut(i) else {
                send_errors += 1;
                continue;
            };
            let Some(sink) = conn.sink.take() else {
                send_errors += 1;
                continue;
            };
            let shared = Arc::clone(&conn.shared);
            shared.window.add_permits(window);
            let sender = SenderCtx {
                me: conn.spec.index,
                to: conn.spec.to.0,
                receiver_json: conn.spec.to.1.clone(),
                phase: id,
                text_bytes: phase.text_bytes,
            };
            let pace = phase.pace;
            let limit = phase.limit.unwrap_or(u64::MAX);
            tasks.push((
                i,
                tokio::spawn(async move {
                    let mut sink = sink;
                    let r = match pace {
                        Pace::Rate(r) => sender.by_rate(&mut sink, r, started, deadline).await,
                        Pace::Window(_) => {
                            sender.by_window(&mut sink, &shared, deadline, limit).await
                        }
                    };
                    (sink, r)
                }),
            ));
        }
        let mut sent = 0;
        let mut intended = 0;
        for (i, t) in tasks {
            match t.await {
                Ok((sink, r)) => {
                    sent += r.sent;
                    intended += r.intended;
                    send_errors += r.errors;
                    self.conns[i].sink = Some(sink);
                }
                Err(_) => send_errors += 1,
            }
        }
        let expected = sent * phase.deliveries_per_message;
        let drain_until = Instant::now() + phase.drain;
        while Instant::now() < drain_until && self.delivered() < expected {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let elapsed = started.elapsed().as_secs_f64();
        // Later arrivals are late: stop counting them before reading the tallies.
        self.phase.store(0, Ordering::Relaxed);
        let mut total = Tally::default();
        for c in &self.conns {
            total.merge(&c.shared.tally());
        }
        let mut report = Report {
            connections: self.conns.len() + self.connect_errors as usize,
            senders: phase.senders.len(),
            rate_per_sender: match phase.pace {
                Pace::Rate(r) => Some(round3(r)),
                Pace::Window(_) => None,
            },
            window: match phase.pace {
                Pace::Window(w) => Some(w),
                Pace::Rate(_) => None,
            },
            duration_s: phase.duration.as_secs_f64(),
            sent,
            intended,
            expected_deliveries: expected,
            errors: send_errors + self.connect_errors,
            closed_by_server: cut_before,
            connect_s: round3(self.connect_s),
            connect_latency: self.connect_latency,
            ..Report::default()
        };
        report.fill(&total, elapsed);
        report
    }

    fn delivered(&self) -> u64 {
        self.conns.iter().map(|c| c.shared.tally().delivered).sum()
    }

    /// Closes every connection (without waiting for the server's replies).
    pub async fn close(self) {
        for mut c in self.conns {
            c.reader.abort();
            if let Some(mut sink) = c.sink.take() {
                let _ = tokio::time::timeout(Duration::from_millis(100), sink.close()).await;
            }
        }
    }
}
