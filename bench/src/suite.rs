//! The standard scenarios of `scripts/bench`, run against natter and the ceiling in turn
//! (the table comparing them is [`crate::table`]).
//!
//! Every scenario is bounded: the fan-out step-up has a fixed number of steps, each run has
//! a fixed duration and drain, the CPU hog has its own deadline, and `main` puts a deadline
//! on the whole suite.

use std::path::PathBuf;
use std::time::Duration;

use crate::load::Pace;
use crate::scenario::{Load, Placement, Prepared, Routing};
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
const INGRESS_QUEUE_CAPACITY: usize = 8192;

/// Text length of benchmark messages: a typical chat line.
const TEXT_BYTES: usize = 64;

/// Whether a fan-out step was sustained: nothing lost, nobody cut, nobody behind.
pub fn sustained(r: &Report) -> bool {
    r.errors == 0
        && r.closed_by_server == 0
        && r.delivery_ratio >= 0.99
        && r.latency.p99_ms <= 100.0
        && r.sent as f64 >= 0.99 * r.intended as f64
        && r.sent > 0
}

fn emit(r: &Report) {
    println!("{}", r.to_json());
}

/// Runs every scenario on `kind`, printing each run's JSON line.
pub async fn run_target(kind: Kind, o: &SuiteOptions) -> Results {
    let mut res = Results::default();
    let secs = Duration::from_secs_f64;
    match fanout(kind, o).await {
        Ok(f) => {
            res.fanout = f.best;
            res.latency = f.latency;
            res.fanout_hog = f.hog;
        }
        Err(e) => eprintln!("natter-bench: fan-out on {}: {e:#}", kind.name()),
    }

    let ingress = async {
        // One connection receives every message here, ~100,000 a second: with the default
        // 1024-frame queue (~10 ms of them) both servers sometimes close it as too slow when
        // the two shared cores stall its task, so both get an 8192-frame queue.
        let mut opts = o.natter.clone();
        opts.queue_capacity = opts.queue_capacity.max(INGRESS_QUEUE_CAPACITY);
        let mut p = Prepared::start(kind, &opts, Routing::Sink, 101).await?;
        let load = Load {
            senders: 100,
            pace: Pace::Window(32),
            duration: secs(o.run_seconds),
            drain: secs(3.0),
            text_bytes: TEXT_BYTES,
            limit: None,
        };
        let r = p.run("ingress", load).await;
        p.stop().await;
        anyhow::Ok(r)
    };
    match ingress.await {
        Ok(r) => {
            emit(&r);
            res.ingress = Some(r);
        }
        Err(e) => eprintln!("natter-bench: ingress on {}: {e:#}", kind.name()),
    }

    let dm = async {
        let mut p = Prepared::start(kind, &o.natter, Routing::Pairs, 100).await?;
        let load = Load {
            senders: 100,
            pace: Pace::Window(16),
            duration: secs(o.run_seconds),
            drain: secs(3.0),
            text_bytes: TEXT_BYTES,
            limit: None,
        };
        let r = p.run("dm", load).await;
        p.stop().await;
        anyhow::Ok(r)
    };
    match dm.await {
        Ok(r) => {
            emit(&r);
            res.dm = Some(r);
        }
        Err(e) => eprintln!("natter-bench: dm on {}: {e:#}", kind.name()),
    }

    let idle = async {
        // 100 accounts with 100 sockets each: every connection is sent the 100-name online
        // list, as in a real deployment with many users.
        let routing = Routing::Group { users: 100 };
        let mut p = Prepared::start(kind, &o.natter, routing, o.idle_connections).await?;
        let r = p.idle("idle", secs(2.0)).await;
        p.stop().await;
        anyhow::Ok(r)
    };
    match idle.await {
        Ok(r) => {
            emit(&r);
            res.idle = Some(r);
        }
        Err(e) => eprintln!("natter-bench: idle on {}: {e:#}", kind.name()),
    }
    res
}

/// The cluster's results: natter on PostgreSQL + Redis.
#[derive(Debug, Clone, Default)]
pub struct ClusterResults {
    /// The best sustained fan-out step with 1, 2 and 3 instances (connections spread).
    pub fanout: Vec<(usize, Report)>,
    /// Two instances, the senders on one and every receiver on the other, at half of the
    /// two instances' best rate.
    pub cross_latency: Option<Report>,
    /// Durable ingress on one instance on PostgreSQL (acknowledged = committed).
    pub ingress: Option<Report>,
    /// Why the cluster was not measured, if it was not.
    pub skipped: Option<String>,
}

/// The cluster scenarios: fan-out with 1, 2 and 3 instances on one PostgreSQL database
/// and a Redis bus (100 connections spread over them), cross-instance latency, and
/// durable ingress on PostgreSQL.
pub async fn run_cluster(o: &SuiteOptions) -> ClusterResults {
    let mut res = ClusterResults::default();
    let group = Routing::Group { users: 10 };
    for instances in 1..=3 {
        let started =
            Prepared::start_cluster(&o.natter, instances, true, group, 100, Placement::Spread)
                .await;
        let mut p = match started {
            Ok(p) => p,
            Err(e) => {
                let why = format!("{e:#}");
                eprintln!("natter-bench: cluster of {instances}: {why}");
                res.skipped.get_or_insert(why);
                return res;
            }
        };
        let (best, _) = step_up(&mut p, o).await;
        p.stop().await;
        if let Some(mut b) = best {
            b.scenario = "fanout".into();
            emit(&b);
            res.fanout.push((instances, b));
        }
    }
    let two = res
        .fanout
        .iter()
        .find(|(n, _)| *n == 2)
        .map(|(_, r)| r.clone());
    if let Some(best) = two {
        let apart = Placement::SendersApart { senders: 10 };
        match Prepared::start_cluster(&o.natter, 2, true, group, 100, apart).await {
            Ok(mut p) => {
                let half = best.rate_per_sender.unwrap_or(100.0) / 2.0;
                let r = p
                    .run("cross-latency", fanout_load(half, o.run_seconds))
                    .await;
                emit(&r);
                res.cross_latency = Some(r);
                p.stop().await;
            }
            Err(e) => eprintln!("natter-bench: cross-instance latency: {e:#}"),
        }
    }
    let mut opts = o.natter.clone();
    opts.queue_capacity = opts.queue_capacity.max(INGRESS_QUEUE_CAPACITY);
    match Prepared::start_cluster(&opts, 1, false, Routing::Sink, 101, Placement::Spread).await {
        Ok(mut p) => {
            let load = Load {
                senders: 100,
                pace: Pace::Window(32),
                duration: Duration::from_secs_f64(o.run_seconds),
                drain: Duration::from_secs(3),
                text_bytes: TEXT_BYTES,
                limit: None,
            };
            let r = p.run("ingress", load).await;
            emit(&r);
            res.ingress = Some(r);
            p.stop().await;
        }
        Err(e) => eprintln!("natter-bench: ingress on PostgreSQL: {e:#}"),
    }
    res
}

/// The fan-out scenario's three reports.
struct Fanout {
    best: Option<Report>,
    latency: Option<Report>,
    hog: Option<Report>,
}

/// Steps the per-sender rate up (×1.4) until a step is not sustained (twice in a row), then
/// bisects three times between the last good and the first bad rate; then runs the latency
/// scenario at half the best, and the best rate once more beside a CPU hog. At most 15
/// rates, 32 runs.
async fn fanout(kind: Kind, o: &SuiteOptions) -> anyhow::Result<Fanout> {
    let mut p = Prepared::start(kind, &o.natter, Routing::Group { users: 10 }, 100).await?;
    let (mut best, good) = step_up(&mut p, o).await;
    let load = fanout_load;
    if let Some(b) = &mut best {
        b.scenario = "fanout".into();
        emit(b);
    }
    let latency = match &best {
        Some(b) => {
            let half = b.rate_per_sender.unwrap_or(good) / 2.0;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let r = p.run("latency", load(half, o.run_seconds)).await;
            emit(&r);
            Some(r)
        }
        None => None,
    };
    // The rate this target sustained on a quiet machine, now beside a busy build: at its
    // own max it has no headroom, so the hog is sure to leave some readers behind, which
    // is what this run is for (natter catches them up from the store, the ceiling cuts
    // them with 1013). A step-up under the hog would settle below the point where anyone
    // falls behind, and would cost another ~15 runs per target.
    let hog = match &best {
        Some(b) => {
            let rate = b.rate_per_sender.unwrap_or(good);
            tokio::time::sleep(Duration::from_millis(500)).await;
            let load = load(rate, o.run_seconds);
            match p.run_with_hog("fanout-hog", load, o.hog_threads).await {
                Ok(r) => {
                    emit(&r);
                    Some(r)
                }
                Err(e) => {
                    eprintln!(
                        "natter-bench: fan-out with a CPU hog on {}: {e:#}",
                        kind.name()
                    );
                    None
                }
            }
        }
        None => None,
    };
    p.stop().await;
    Ok(Fanout { best, latency, hog })
}

/// The fan-out load: 10 senders at `rate` messages per second each.
fn fanout_load(rate: f64, seconds: f64) -> Load {
    Load {
        senders: 10,
        pace: Pace::Rate(rate),
        duration: Duration::from_secs_f64(seconds),
        drain: Duration::from_secs(2),
        text_bytes: TEXT_BYTES,
        limit: None,
    }
}

/// The step-up and bisection of [`fanout`]: the best sustained step, and its rate per
/// sender (0 when none was).
async fn step_up(p: &mut Prepared, o: &SuiteOptions) -> (Option<Report>, f64) {
    let load = fanout_load;
    let mut best: Option<Report> = None;
    let mut good = 0.0;
    let mut bad = None;
    let mut rate = 100.0;
    for _ in 0..12 {
        let r = step(p, load(rate, o.step_seconds)).await;
        if sustained(&r) {
            good = rate;
            if best
                .as_ref()
                .is_none_or(|b| r.delivered_per_s > b.delivered_per_s)
            {
                best = Some(r);
            }
            rate *= 1.4;
        } else {
            bad = Some(rate);
            break;
        }
        // Let the server settle between steps.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    if let Some(mut hi) = bad {
        for _ in 0..3 {
            if good <= 0.0 {
                break;
            }
            let mid = (good + hi) / 2.0;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let r = step(p, load(mid, o.step_seconds)).await;
            if sustained(&r) {
                good = mid;
                if best
                    .as_ref()
                    .is_none_or(|b| r.delivered_per_s > b.delivered_per_s)
                {
                    best = Some(r);
                }
            } else {
                hi = mid;
            }
        }
    }
    (best, good)
}

/// One fan-out step; a step that fails is tried once more after a pause, so one stall of
/// the shared machine (another process's burst) does not end the step-up early.
async fn step(p: &mut Prepared, load: Load) -> Report {
    let r = p.run("fanout-step", load).await;
    emit(&r);
    if sustained(&r) {
        return r;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let again = p.run("fanout-step", load).await;
    emit(&again);
    again
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
