//! The cluster's Markdown table: natter on PostgreSQL + Redis with 1, 2 and 3 instances,
//! beside the single SQLite instance measured in the same run, with the goals; then
//! what each delivery cost in each instance, in Redis and in PostgreSQL, which is what the
//! capacity table in docs/performance.md is derived from.

use std::fmt::Write as _;

use crate::stats::Report;
use crate::suite::{ClusterResults, Results};
use crate::table::fmt_with;

/// CPU seconds per 1,000 deliveries.
fn per_thousand(cpu_s: f64, r: &Report) -> Option<f64> {
    (r.delivered > 0).then(|| cpu_s * 1000.0 / r.delivered as f64)
}

fn yes_no(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "",
    }
}

/// The table, or one line saying why the cluster was not measured.
pub fn markdown(sqlite: &Results, c: &ClusterResults) -> String {
    let mut out = String::new();
    if let Some(why) = &c.skipped {
        let _ = writeln!(out, "cluster not measured: {why}");
        return out;
    }
    let _ = writeln!(
        out,
        "| cluster scenario | metric | PostgreSQL + Redis | SQLite, same run | ratio | goal | met |"
    );
    let _ = writeln!(out, "| --- | --- | ---: | ---: | ---: | --- | --- |");
    let mut row = |scenario: String,
                   metric: &str,
                   value: Option<f64>,
                   base: Option<f64>,
                   goal: &str,
                   met: Option<bool>,
                   decimals: usize| {
        let ratio = match (value, base) {
            (Some(a), Some(b)) if b != 0.0 => format!("{:.2}", a / b),
            _ => "–".into(),
        };
        let _ = writeln!(
            out,
            "| {scenario} | {metric} | {} | {} | {ratio} | {goal} | {} |",
            fmt_with(value, decimals),
            fmt_with(base, decimals),
            yes_no(met)
        );
    };
    let sqlite_fanout = sqlite.fanout.as_ref().map(|r| r.delivered_per_s);
    for (n, r) in &c.fanout {
        let (goal, met) = if *n == 1 {
            let met = sqlite_fanout.map(|s| r.delivered_per_s >= 0.3 * s);
            ("≥ 0.3× SQLite", met)
        } else {
            ("", None)
        };
        let scenario = format!("fan-out, {n} instance{}", if *n == 1 { "" } else { "s" });
        let base = (*n == 1).then_some(sqlite_fanout).flatten();
        row(
            scenario.clone(),
            "deliveries/s",
            Some(r.delivered_per_s),
            base,
            goal,
            met,
            0,
        );
        let sqlite_lat = sqlite.fanout.as_ref().map(|s| s.latency.p99_ms);
        row(
            scenario.clone(),
            "p50 latency, ms",
            Some(r.latency.p50_ms),
            None,
            "",
            None,
            2,
        );
        row(
            scenario,
            "p99 latency, ms",
            Some(r.latency.p99_ms),
            sqlite_lat.filter(|_| *n == 1),
            "",
            None,
            2,
        );
    }
    if let Some(r) = &c.cross_latency {
        let p99 = r.latency.p99_ms;
        let ok = r.errors == 0 && r.delivery_ratio >= 0.99;
        row(
            "cross-instance at 50 % of max".into(),
            "p50 latency, ms",
            Some(r.latency.p50_ms),
            None,
            "",
            None,
            2,
        );
        row(
            "cross-instance at 50 % of max".into(),
            "p99 latency, ms",
            Some(p99),
            None,
            "≤ 25 ms",
            Some(ok && p99 <= 25.0),
            2,
        );
    }
    if let Some(r) = &c.ingress {
        let base = sqlite.ingress.as_ref().map(|s| s.acknowledged_per_s);
        row(
            "durable ingress, 1 instance".into(),
            "acknowledged/s",
            Some(r.acknowledged_per_s),
            base,
            "≥ 20,000",
            Some(r.acknowledged_per_s >= 20_000.0 && r.errors == 0),
            0,
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| CPU seconds per 1,000 deliveries | each instance | Redis | PostgreSQL | all |"
    );
    let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: |");
    let sqlite_cpu = sqlite
        .fanout
        .as_ref()
        .and_then(|r| per_thousand(r.server_cpu_s, r));
    let _ = writeln!(
        out,
        "| fan-out, 1 instance on SQLite | {} | – | – | {} |",
        fmt_with(sqlite_cpu, 4),
        fmt_with(sqlite_cpu, 4)
    );
    for (n, r) in &c.fanout {
        let each: Vec<String> = r
            .instance_cpu_s
            .iter()
            .map(|s| fmt_with(per_thousand(*s, r), 4))
            .collect();
        let redis = per_thousand(r.redis_cpu_s, r);
        let pg = per_thousand(r.postgres_cpu_s, r);
        let all = per_thousand(r.server_cpu_s + r.redis_cpu_s + r.postgres_cpu_s, r);
        let _ = writeln!(
            out,
            "| fan-out, {n} on PostgreSQL + Redis | {} | {} | {} | {} |",
            each.join(" / "),
            fmt_with(redis, 4),
            fmt_with(pg, 4),
            fmt_with(all, 4)
        );
    }
    out
}
