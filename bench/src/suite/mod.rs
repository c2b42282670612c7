//! The standard scenarios of `scripts/bench`, run against natter and the ceiling in turn
//! (the table comparing them is [`crate::table`]).
//!
//! Every scenario is bounded: the fan-out step-up has a fixed number of steps, each run has
//! a fixed duration and drain, the CPU hog has its own deadline, and `main` puts a deadline
//! on the whole suite.
//!
//! Here: the options, the fixed-load scenarios as a table ([`Steady`]) and the run over a
//! target. Beside it: `fanout.rs` (the step-up to the best sustained fan-out, then latency
//! and the CPU hog at that rate) and `cluster.rs` (the same on PostgreSQL + Redis with 1-3
//! instances, cross-instance latency, ingress on PostgreSQL).

use std::path::PathBuf;
use std::time::Duration;

mod cluster;
mod fanout;

pub use cluster::{ClusterResults, run_cluster};
use fanout::fanout;

use crate::load::Pace;
use crate::scenario::{Load, Prepared, Routing};
use crate::stats::Report;
use crate::target::{Kind, ServerOptions};

/// Knobs for the suite.
#[derive(Debug, Clone)]
pub struct SuiteOptions {
    /// How to start natter-server.
    pub natter: ServerOptions,
    /// The `natter` client binary, for the `tail` row.
    pub client: PathBuf,
    /// Seconds per fan-out step.
    pub step_seconds: f64,
    /// Seconds for the other runs.
    pub run_seconds: f64,
    /// Connections for the idle scenario.
    pub idle_connections: usize,
    /// Messages in the client burst.
    pub client_burst: u64,
    /// Busy threads of the CPU hog beside the fan-out's last run (one per core by default).
    pub hog_threads: usize,
}

/// One target's results.
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// The best passing fan-out step.
    pub fanout: Option<Report>,
    /// At half of that.
    pub latency: Option<Report>,
    /// At the best step's rate again, with a CPU hog beside it.
    pub fanout_hog: Option<Report>,
    /// Durable ingress.
    pub ingress: Option<Report>,
    /// Direct messages.
    pub dm: Option<Report>,
    /// Idle connections.
    pub idle: Option<Report>,
}

/// Per-connection queue for the ingress scenario's single receiver.
pub(crate) const INGRESS_QUEUE_CAPACITY: usize = 8192;

/// Text length of benchmark messages: a typical chat line.
pub(crate) const TEXT_BYTES: usize = 64;

/// Whether a fan-out step was sustained: nothing lost, nobody cut, nobody behind.
pub fn sustained(r: &Report) -> bool {
    r.errors == 0
        && r.closed_by_server == 0
        && r.delivery_ratio >= 0.99
        && r.latency.p99_ms <= 100.0
        && r.sent as f64 >= 0.99 * r.intended as f64
        && r.sent > 0
}

pub(crate) fn emit(r: &Report) {
    println!("{}", r.to_json());
}

/// A scenario run once at a fixed load: the connections it opens, and what they do.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Steady {
    /// The name in the JSON lines and the table.
    pub(crate) name: &'static str,
    /// Who is who among the connections.
    pub(crate) routing: Routing,
    /// Connections opened.
    pub(crate) connections: usize,
    /// What they send; `None` to hold them open, idle, and measure their cost.
    pub(crate) load: Option<Load>,
    /// Per-connection queue of at least this many frames (else the server's default).
    pub(crate) queue_at_least: Option<usize>,
}

/// The fixed-load scenarios, in the order they run.
fn steady(o: &SuiteOptions) -> [Steady; 3] {
    let secs = Duration::from_secs_f64;
    [
        ingress(o),
        Steady {
            name: "dm",
            routing: Routing::Pairs,
            connections: 100,
            load: Some(Load {
                senders: 100,
                pace: Pace::Window(16),
                duration: secs(o.run_seconds),
                drain: secs(3.0),
                text_bytes: TEXT_BYTES,
                limit: None,
            }),
            queue_at_least: None,
        },
        // 100 accounts with 100 sockets each, as in a real deployment with many users: as
        // the accounts come online, every socket already open is sent their presence.
        Steady {
            name: "idle",
            routing: Routing::Group { users: 100 },
            connections: o.idle_connections,
            load: None,
            queue_at_least: None,
        },
    ]
}

/// Durable ingress: 100 senders, each keeping 32 messages unacknowledged, into one
/// receiver. Also run on PostgreSQL (`cluster.rs`).
pub(crate) fn ingress(o: &SuiteOptions) -> Steady {
    Steady {
        name: "ingress",
        routing: Routing::Sink,
        connections: 101,
        load: Some(Load {
            senders: 100,
            pace: Pace::Window(32),
            duration: Duration::from_secs_f64(o.run_seconds),
            drain: Duration::from_secs(3),
            text_bytes: TEXT_BYTES,
            limit: None,
        }),
        // One connection receives every message here, ~100,000 a second: with the default
        // 1024-frame queue (~10 ms of them) both servers sometimes close it as too slow when
        // the two shared cores stall its task, so both get an 8192-frame queue.
        queue_at_least: Some(INGRESS_QUEUE_CAPACITY),
    }
}

impl Steady {
    /// The server options this scenario needs.
    pub(crate) fn options(&self, o: &SuiteOptions) -> ServerOptions {
        let mut opts = o.natter.clone();
        if let Some(q) = self.queue_at_least {
            opts.queue_capacity = opts.queue_capacity.max(q);
        }
        opts
    }

    /// Runs it on servers already started for it.
    pub(crate) async fn run_on(&self, p: &mut Prepared) -> Report {
        match self.load {
            Some(load) => p.run(self.name, load).await,
            None => p.idle(self.name, Duration::from_secs(2)).await,
        }
    }
}

/// Runs every scenario on `kind`, printing each run's JSON line.
pub async fn run_target(kind: Kind, o: &SuiteOptions) -> Results {
    let mut res = Results::default();
    match fanout(kind, o).await {
        Ok(f) => {
            res.fanout = f.best;
            res.latency = f.latency;
            res.fanout_hog = f.hog;
        }
        Err(e) => eprintln!("natter-bench: fan-out on {}: {e:#}", kind.name()),
    }
    for scenario in steady(o) {
        let run = async {
            let opts = scenario.options(o);
            let mut p =
                Prepared::start(kind, &opts, scenario.routing, scenario.connections).await?;
            let r = scenario.run_on(&mut p).await;
            p.stop().await;
            anyhow::Ok(r)
        };
        match run.await {
            Ok(r) => {
                emit(&r);
                let slot = match scenario.name {
                    "ingress" => &mut res.ingress,
                    "dm" => &mut res.dm,
                    _ => &mut res.idle,
                };
                *slot = Some(r);
            }
            Err(e) => eprintln!("natter-bench: {} on {}: {e:#}", scenario.name, kind.name()),
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A step with errors, a cut connection, losses or a fallen-behind sender is not
    /// sustained.
    #[test]
    fn sustained_needs_every_condition() {
        let ok = Report {
            sent: 100,
            intended: 100,
            delivery_ratio: 1.0,
            ..Report::default()
        };
        assert!(sustained(&ok));
        assert!(!sustained(&Report {
            errors: 1,
            ..ok.clone()
        }));
        assert!(!sustained(&Report {
            closed_by_server: 1,
            ..ok.clone()
        }));
        assert!(!sustained(&Report {
            delivery_ratio: 0.98,
            ..ok.clone()
        }));
        assert!(!sustained(&Report {
            intended: 200,
            ..ok.clone()
        }));
    }
}
