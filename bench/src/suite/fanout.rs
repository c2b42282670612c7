//! The fan-out scenario: 10 senders to everyone over 100 connections, stepped up to the
//! best rate the target sustains; then latency at half of it, and that rate again beside a
//! CPU hog.

use std::time::Duration;

use super::{SuiteOptions, TEXT_BYTES, emit, sustained};
use crate::load::Pace;
use crate::scenario::{Load, Prepared, Routing};
use crate::stats::Report;
use crate::target::Kind;

/// The fan-out scenario's three reports.
pub(super) struct Fanout {
    pub(super) best: Option<Report>,
    pub(super) latency: Option<Report>,
    pub(super) hog: Option<Report>,
}

/// Steps the per-sender rate up (×1.4) until a step is not sustained (twice in a row), then
/// bisects three times between the last good and the first bad rate; then runs the latency
/// scenario at half the best, and the best rate once more beside a CPU hog. At most 15
/// rates, 32 runs.
pub(super) async fn fanout(kind: Kind, o: &SuiteOptions) -> anyhow::Result<Fanout> {
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
pub(super) fn fanout_load(rate: f64, seconds: f64) -> Load {
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
pub(super) async fn step_up(p: &mut Prepared, o: &SuiteOptions) -> (Option<Report>, f64) {
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
