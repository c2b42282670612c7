//! The standard scenarios of `scripts/bench`, run against natter and the ceiling in turn,
//! and the Markdown table that compares them.
//!
//! Every scenario is bounded: the fan-out step-up has a fixed number of steps, each run has
//! a fixed duration and drain, and `main` puts a deadline on the whole suite.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use crate::client;
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
}

/// One target's results.
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// The best passing fan-out step.
    pub fanout: Option<Report>,
    /// At half of that.
    pub latency: Option<Report>,
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

/// Whether a fan-out step was sustained.
pub fn sustained(r: &Report) -> bool {
    r.errors == 0
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
        Ok((best, latency)) => {
            res.fanout = best;
            res.latency = latency;
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

/// Steps the per-sender rate up (×1.4) until a step is not sustained (twice in a row), then
/// bisects three times between the last good and the first bad rate; then runs the latency
/// scenario at half the best. At most 15 rates, 30 runs.
async fn fanout(kind: Kind, o: &SuiteOptions) -> anyhow::Result<(Option<Report>, Option<Report>)> {
    let mut p = Prepared::start(kind, &o.natter, Routing::Group { users: 10 }, 100).await?;
    let load = |rate: f64, seconds: f64| Load {
        senders: 10,
        pace: Pace::Rate(rate),
        duration: Duration::from_secs_f64(seconds),
        drain: Duration::from_secs(2),
        text_bytes: TEXT_BYTES,
        limit: None,
    };
    let mut best: Option<Report> = None;
    let mut good = 0.0;
    let mut bad = None;
    let mut rate = 100.0;
    for _ in 0..12 {
        let r = step(&mut p, load(rate, o.step_seconds)).await;
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
            let r = step(&mut p, load(mid, o.step_seconds)).await;
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
    p.stop().await;
    Ok((best, latency))
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

/// One row of the table.
struct Row {
    scenario: &'static str,
    metric: &'static str,
    natter: Option<f64>,
    ceiling: Option<f64>,
    goal: String,
    /// Whether the goal is met, given (natter, ceiling).
    met: Option<bool>,
}

fn fmt_num(x: Option<f64>) -> String {
    match x {
        None => "–".into(),
        Some(v) if v >= 1000.0 => {
            let s = format!("{:.0}", v);
            // Thousands separators.
            let mut out = String::new();
            for (i, c) in s.chars().enumerate() {
                if i > 0 && (s.len() - i) % 3 == 0 {
                    out.push(',');
                }
                out.push(c);
            }
            out
        }
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
    }
}

/// The Markdown table: natter, ceiling, ratio, and the goal.
pub fn table(n: &Results, c: &Results, client_row: &client::ClientResult) -> String {
    let get = |r: &Option<Report>, f: fn(&Report) -> f64| r.as_ref().map(f);
    let mut rows = Vec::new();
    let fan = (
        get(&n.fanout, |r| r.delivered_per_s),
        get(&c.fanout, |r| r.delivered_per_s),
    );
    rows.push(Row {
        scenario: "fan-out (100 conns, 10 senders)",
        metric: "max sustained deliveries/s",
        natter: fan.0,
        ceiling: fan.1,
        goal: "≥ 0.5× ceiling".into(),
        met: match fan {
            (Some(a), Some(b)) => Some(a >= 0.5 * b),
            _ => None,
        },
    });
    let lat50 = (
        get(&n.latency, |r| r.latency.p50_ms),
        get(&c.latency, |r| r.latency.p50_ms),
    );
    rows.push(Row {
        scenario: "latency at 50% of max",
        metric: "p50 ms",
        natter: lat50.0,
        ceiling: lat50.1,
        goal: String::new(),
        met: None,
    });
    let lat99 = (
        get(&n.latency, |r| r.latency.p99_ms),
        get(&c.latency, |r| r.latency.p99_ms),
    );
    rows.push(Row {
        scenario: "latency at 50% of max",
        metric: "p99 ms",
        natter: lat99.0,
        ceiling: lat99.1,
        goal: "≤ 10 ms".into(),
        met: lat99.0.map(|v| v <= 10.0),
    });
    rows.push(Row {
        scenario: "latency at 50% of max",
        metric: "deliveries/s offered",
        natter: get(&n.latency, |r| r.delivered_per_s),
        ceiling: get(&c.latency, |r| r.delivered_per_s),
        goal: String::new(),
        met: None,
    });
    let ing = (
        get(&n.ingress, |r| r.acknowledged_per_s),
        get(&c.ingress, |r| r.acknowledged_per_s),
    );
    rows.push(Row {
        scenario: "durable ingress (100 senders × window 32 → 1)",
        metric: "acknowledged msgs/s",
        natter: ing.0,
        ceiling: ing.1,
        goal: "≥ 50,000".into(),
        met: ing.0.map(|v| v >= 50_000.0),
    });
    let ack99 = (
        get(&n.ingress, |r| r.ack_latency.p99_ms),
        get(&c.ingress, |r| r.ack_latency.p99_ms),
    );
    rows.push(Row {
        scenario: "durable ingress",
        metric: "ack p99 ms",
        natter: ack99.0,
        ceiling: ack99.1,
        goal: "≤ 20 ms".into(),
        met: ack99.0.map(|v| v <= 20.0),
    });
    rows.push(Row {
        scenario: "direct messages (50 pairs)",
        metric: "deliveries/s",
        natter: get(&n.dm, |r| r.delivered_per_s),
        ceiling: get(&c.dm, |r| r.delivered_per_s),
        goal: String::new(),
        met: None,
    });
    let mis = get(&n.dm, |r| r.misdelivered as f64);
    rows.push(Row {
        scenario: "direct messages",
        metric: "misdeliveries",
        natter: mis,
        ceiling: get(&c.dm, |r| r.misdelivered as f64),
        goal: "0".into(),
        met: mis.map(|v| v == 0.0),
    });
    rows.push(Row {
        scenario: "idle connections",
        metric: "connect time s",
        natter: get(&n.idle, |r| r.connect_s),
        ceiling: get(&c.idle, |r| r.connect_s),
        goal: String::new(),
        met: None,
    });
    let rss = (
        get(&n.idle, |r| r.rss_per_connection_kib),
        get(&c.idle, |r| r.rss_per_connection_kib),
    );
    rows.push(Row {
        scenario: "idle connections",
        metric: "RSS per connection KiB",
        natter: rss.0,
        ceiling: rss.1,
        goal: "≤ 16 KiB".into(),
        met: rss.0.map(|v| v <= 16.0),
    });
    let idle_err = get(&n.idle, |r| r.errors as f64);
    rows.push(Row {
        scenario: "idle connections",
        metric: "errors",
        natter: idle_err,
        ceiling: get(&c.idle, |r| r.errors as f64),
        goal: "0".into(),
        met: idle_err.map(|v| v == 0.0),
    });

    let mut out = String::new();
    let _ = writeln!(
        out,
        "| scenario | metric | natter | ceiling | natter/ceiling | goal | met |"
    );
    let _ = writeln!(out, "| --- | --- | ---: | ---: | ---: | --- | --- |");
    for r in rows {
        let ratio = match (r.natter, r.ceiling) {
            (Some(a), Some(b)) if b != 0.0 => format!("{:.2}", a / b),
            _ => "–".into(),
        };
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.scenario,
            r.metric,
            fmt_num(r.natter),
            fmt_num(r.ceiling),
            ratio,
            r.goal,
            met
        );
    }
    let (value, goal_met, note) = match client_row {
        client::ClientResult::Measured { messages_per_s, .. } => (
            fmt_num(Some(*messages_per_s)),
            if *messages_per_s >= 100_000.0 {
                "yes"
            } else {
                "**no**"
            },
            String::new(),
        ),
        client::ClientResult::Skipped(why) => ("–".into(), "", format!(" (skipped: {why})")),
    };
    let _ = writeln!(
        out,
        "| client: `natter tail --json`, 100,000 burst{note} | messages/s | {value} | – | – | ≥ 100,000 | {goal_met} |"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Large numbers get thousands separators; small ones two decimals.
    #[test]
    fn number_format() {
        assert_eq!(fmt_num(Some(1_234_567.4)), "1,234,567");
        assert_eq!(fmt_num(Some(123_456.0)), "123,456");
        assert_eq!(fmt_num(Some(1.234)), "1.23");
        assert_eq!(fmt_num(None), "–");
    }

    /// A step with errors, losses or a fallen-behind sender is not sustained.
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
            delivery_ratio: 0.98,
            ..ok.clone()
        }));
        assert!(!sustained(&Report {
            intended: 200,
            ..ok.clone()
        }));
    }
}
