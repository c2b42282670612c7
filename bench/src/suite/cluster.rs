//! The cluster scenarios: natter on PostgreSQL + Redis (a database and a throwaway
//! `redis-server` made for each run, see `crate::cluster`).

use super::fanout::{fanout_load, step_up};
use super::{SuiteOptions, emit};
use crate::scenario::{Placement, Prepared, Routing};
use crate::stats::Report;

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
    let ingress = super::ingress(o);
    let opts = ingress.options(o);
    match Prepared::start_cluster(
        &opts,
        1,
        false,
        ingress.routing,
        ingress.connections,
        Placement::Spread,
    )
    .await
    {
        Ok(mut p) => {
            let r = ingress.run_on(&mut p).await;
            emit(&r);
            res.ingress = Some(r);
            p.stop().await;
        }
        Err(e) => eprintln!("natter-bench: ingress on PostgreSQL: {e:#}"),
    }
    res
}
