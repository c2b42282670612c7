//! The Markdown table `scripts/bench` prints: one row per figure, natter beside the
//! ceiling, their ratio, and the goal with whether it is met.
//!
//! Add a row where its scenario's rows are; a row whose goal depends on several figures
//! (the CPU-hog run's) computes `met` from all of them.

use std::fmt::Write as _;

use crate::client;
use crate::stats::Report;
use crate::suite::Results;

/// One row of the table.
struct Row {
    scenario: String,
    metric: &'static str,
    natter: Option<f64>,
    ceiling: Option<f64>,
    goal: String,
    /// Whether the goal is met, given (natter, ceiling).
    met: Option<bool>,
    /// Decimals for values under 100.
    decimals: usize,
}

impl Default for Row {
    fn default() -> Row {
        Row {
            scenario: String::new(),
            metric: "",
            natter: None,
            ceiling: None,
            goal: String::new(),
            met: None,
            decimals: 2,
        }
    }
}

fn fmt_num(x: Option<f64>) -> String {
    fmt_with(x, 2)
}

pub(crate) fn fmt_with(x: Option<f64>, decimals: usize) -> String {
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
        Some(v) => format!("{v:.decimals$}"),
    }
}

/// Share of the paced messages actually sent.
fn sent_share(r: &Report) -> f64 {
    if r.intended == 0 {
        0.0
    } else {
        r.sent as f64 / r.intended as f64
    }
}

/// The fan-out run beside a CPU hog: throughput against the ceiling's, cuts, losses, and
/// what a delivery cost with the cores contended. Its goal needs all three at once.
fn hog_rows(n: &Results, c: &Results) -> Vec<Row> {
    let get = |r: &Option<Report>, f: fn(&Report) -> f64| r.as_ref().map(f);
    let (nh, ch) = (&n.fanout_hog, &c.fanout_hog);
    let threads = nh.as_ref().or(ch.as_ref()).map_or(0, |r| r.hog_threads);
    let scenario = format!("fan-out at the quiet max, CPU hog of {threads} busy threads");
    let rate = (
        get(nh, |r| r.delivered_per_s),
        get(ch, |r| r.delivered_per_s),
    );
    let cut = get(nh, |r| r.closed_by_server as f64);
    let ratio = get(nh, |r| r.delivery_ratio);
    let met = match (rate, cut, ratio) {
        ((Some(a), Some(b)), Some(cut), Some(ratio)) => {
            Some(a >= 0.5 * b && cut == 0.0 && ratio >= 0.99)
        }
        _ => None,
    };
    vec![
        Row {
            scenario,
            metric: "deliveries/s",
            natter: rate.0,
            ceiling: rate.1,
            goal: "≥ 0.5× ceiling, 0 cut, ratio ≥ 0.99".into(),
            met,
            ..Row::default()
        },
        Row {
            scenario: "fan-out with CPU hog".into(),
            metric: "connections cut",
            natter: cut,
            ceiling: get(ch, |r| r.closed_by_server as f64),
            goal: "0".into(),
            met: cut.map(|v| v == 0.0),
            ..Row::default()
        },
        Row {
            scenario: "fan-out with CPU hog".into(),
            metric: "delivery ratio",
            natter: ratio,
            ceiling: get(ch, |r| r.delivery_ratio),
            goal: "≥ 0.99".into(),
            met: ratio.map(|v| v >= 0.99),
            decimals: 3,
        },
        Row {
            // Below 1 the load generator, squeezed too, fell behind its schedule: that
            // server was offered less than the quiet step.
            scenario: "fan-out with CPU hog".into(),
            metric: "sent / intended",
            natter: get(nh, sent_share),
            ceiling: get(ch, sent_share),
            decimals: 3,
            ..Row::default()
        },
        Row {
            scenario: "fan-out with CPU hog".into(),
            metric: "server CPU µs per delivery",
            natter: get(nh, |r| r.server_cpu_us_per_delivery),
            ceiling: get(ch, |r| r.server_cpu_us_per_delivery),
            ..Row::default()
        },
        Row {
            scenario: "fan-out with CPU hog".into(),
            metric: "cores the hog took",
            natter: get(nh, |r| r.hog_cores),
            ceiling: get(ch, |r| r.hog_cores),
            ..Row::default()
        },
    ]
}

/// The Markdown table: natter, ceiling, ratio, and the goal.
pub fn markdown(n: &Results, c: &Results, client_row: &client::ClientResult) -> String {
    let get = |r: &Option<Report>, f: fn(&Report) -> f64| r.as_ref().map(f);
    let mut rows = Vec::new();
    let fan = (
        get(&n.fanout, |r| r.delivered_per_s),
        get(&c.fanout, |r| r.delivered_per_s),
    );
    rows.push(Row {
        scenario: "fan-out (100 conns, 10 senders)".into(),
        metric: "max sustained deliveries/s",
        natter: fan.0,
        ceiling: fan.1,
        goal: "≥ 0.5× ceiling".into(),
        met: match fan {
            (Some(a), Some(b)) => Some(a >= 0.5 * b),
            _ => None,
        },
        ..Row::default()
    });
    rows.push(Row {
        scenario: "fan-out, quiet (best step)".into(),
        metric: "server CPU µs per delivery",
        natter: get(&n.fanout, |r| r.server_cpu_us_per_delivery),
        ceiling: get(&c.fanout, |r| r.server_cpu_us_per_delivery),
        ..Row::default()
    });
    rows.push(Row {
        scenario: "fan-out, quiet (best step)".into(),
        metric: "connections cut",
        natter: get(&n.fanout, |r| r.closed_by_server as f64),
        ceiling: get(&c.fanout, |r| r.closed_by_server as f64),
        goal: "0".into(),
        met: get(&n.fanout, |r| r.closed_by_server as f64).map(|v| v == 0.0),
        ..Row::default()
    });
    rows.extend(hog_rows(n, c));
    let lat50 = (
        get(&n.latency, |r| r.latency.p50_ms),
        get(&c.latency, |r| r.latency.p50_ms),
    );
    rows.push(Row {
        scenario: "latency at 50% of max".into(),
        metric: "p50 ms",
        natter: lat50.0,
        ceiling: lat50.1,
        ..Row::default()
    });
    let lat99 = (
        get(&n.latency, |r| r.latency.p99_ms),
        get(&c.latency, |r| r.latency.p99_ms),
    );
    rows.push(Row {
        scenario: "latency at 50% of max".into(),
        metric: "p99 ms",
        natter: lat99.0,
        ceiling: lat99.1,
        goal: "≤ 10 ms".into(),
        met: lat99.0.map(|v| v <= 10.0),
        ..Row::default()
    });
    rows.push(Row {
        scenario: "latency at 50% of max".into(),
        metric: "deliveries/s offered",
        natter: get(&n.latency, |r| r.delivered_per_s),
        ceiling: get(&c.latency, |r| r.delivered_per_s),
        ..Row::default()
    });
    let ing = (
        get(&n.ingress, |r| r.acknowledged_per_s),
        get(&c.ingress, |r| r.acknowledged_per_s),
    );
    rows.push(Row {
        scenario: "durable ingress (100 senders × window 32 → 1)".into(),
        metric: "acknowledged msgs/s",
        natter: ing.0,
        ceiling: ing.1,
        goal: "≥ 50,000".into(),
        met: ing.0.map(|v| v >= 50_000.0),
        ..Row::default()
    });
    let ack99 = (
        get(&n.ingress, |r| r.ack_latency.p99_ms),
        get(&c.ingress, |r| r.ack_latency.p99_ms),
    );
    rows.push(Row {
        scenario: "durable ingress".into(),
        metric: "ack p99 ms",
        natter: ack99.0,
        ceiling: ack99.1,
        goal: "≤ 20 ms".into(),
        met: ack99.0.map(|v| v <= 20.0),
        ..Row::default()
    });
    rows.push(Row {
        scenario: "direct messages (50 pairs)".into(),
        metric: "deliveries/s",
        natter: get(&n.dm, |r| r.delivered_per_s),
        ceiling: get(&c.dm, |r| r.delivered_per_s),
        ..Row::default()
    });
    let mis = get(&n.dm, |r| r.misdelivered as f64);
    rows.push(Row {
        scenario: "direct messages".into(),
        metric: "misdeliveries",
        natter: mis,
        ceiling: get(&c.dm, |r| r.misdelivered as f64),
        goal: "0".into(),
        met: mis.map(|v| v == 0.0),
        ..Row::default()
    });
    rows.push(Row {
        scenario: "idle connections".into(),
        metric: "connect time s",
        natter: get(&n.idle, |r| r.connect_s),
        ceiling: get(&c.idle, |r| r.connect_s),
        ..Row::default()
    });
    let rss = (
        get(&n.idle, |r| r.rss_per_connection_kib),
        get(&c.idle, |r| r.rss_per_connection_kib),
    );
    rows.push(Row {
        scenario: "idle connections".into(),
        metric: "RSS per connection KiB",
        natter: rss.0,
        ceiling: rss.1,
        goal: "≤ 16 KiB".into(),
        met: rss.0.map(|v| v <= 16.0),
        ..Row::default()
    });
    let idle_err = get(&n.idle, |r| r.errors as f64);
    rows.push(Row {
        scenario: "idle connections".into(),
        metric: "errors",
        natter: idle_err,
        ceiling: get(&c.idle, |r| r.errors as f64),
        goal: "0".into(),
        met: idle_err.map(|v| v == 0.0),
        ..Row::default()
    });
    let idle_cut = get(&n.idle, |r| r.closed_by_server as f64);
    rows.push(Row {
        scenario: "idle connections".into(),
        metric: "connections cut",
        natter: idle_cut,
        ceiling: get(&c.idle, |r| r.closed_by_server as f64),
        goal: "0".into(),
        met: idle_cut.map(|v| v == 0.0),
        ..Row::default()
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
            fmt_with(r.natter, r.decimals),
            fmt_with(r.ceiling, r.decimals),
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

    /// Large numbers get thousands separators; small ones two decimals (or as asked).
    #[test]
    fn number_format() {
        assert_eq!(fmt_num(Some(1_234_567.4)), "1,234,567");
        assert_eq!(fmt_num(Some(123_456.0)), "123,456");
        assert_eq!(fmt_num(Some(1.234)), "1.23");
        assert_eq!(fmt_with(Some(0.9876), 3), "0.988");
        assert_eq!(fmt_num(None), "–");
    }

    /// The CPU-hog goal is met only with the throughput, no cut and no loss all at once.
    #[test]
    fn hog_goal_needs_all_three() {
        let run = |delivered_per_s, closed_by_server, delivery_ratio| Results {
            fanout_hog: Some(Report {
                delivered_per_s,
                closed_by_server,
                delivery_ratio,
                ..Report::default()
            }),
            ..Results::default()
        };
        let ceiling = run(1000.0, 3, 0.9);
        let met = |n: &Results| hog_rows(n, &ceiling)[0].met;
        assert_eq!(met(&run(600.0, 0, 0.995)), Some(true));
        assert_eq!(met(&run(400.0, 0, 0.995)), Some(false));
        assert_eq!(met(&run(600.0, 1, 0.995)), Some(false));
        assert_eq!(met(&run(600.0, 0, 0.98)), Some(false));
        assert_eq!(met(&Results::default()), None);
        let table = markdown(
            &run(600.0, 0, 0.995),
            &ceiling,
            &client::ClientResult::Skipped("x".into()),
        );
        assert!(
            table.contains("| fan-out with CPU hog | connections cut | 0.00 | 3.00 |"),
            "{table}"
        );
    }
}
