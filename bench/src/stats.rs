//! Counting deliveries and summarizing a run into its one JSON line.
//!
//! Each connection's reader keeps its own [`Tally`] (histograms in microseconds), behind an
//! uncontended mutex; at the end of a phase the tallies are merged and turned into a
//! [`Report`].

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency a histogram tracks, in microseconds (a minute); larger values are clamped.
const MAX_TRACKED_US: u64 = 60_000_000;

fn new_histogram() -> Histogram<u64> {
    // Bounds are constants that hdrhistogram accepts (1 ≤ low, high ≥ 2·low, 3 figures).
    Histogram::new_with_bounds(1, MAX_TRACKED_US, 3).unwrap_or_else(|_| unreachable!())
}

/// What one connection (or, merged, a whole run) observed.
///
/// The histograms are allocated on first use: at three significant figures over a minute
/// each is a few hundred KiB, which 10,000 idle connections must not pay for.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Send→receive latency of every delivery, µs.
    pub delivery_us: Option<Histogram<u64>>,
    /// Send→echo latency at the sender (the acknowledgement), µs.
    pub ack_us: Option<Histogram<u64>>,
    /// Benchmark messages received in the current phase.
    pub delivered: u64,
    /// Of those, the connection's own messages coming back.
    pub acknowledged: u64,
    /// Direct messages received by a connection that is neither party.
    pub misdelivered: u64,
    /// Error frames and failed reads (not the server closing the connection: that is
    /// `closed_by_server`).
    pub errors: u64,
    /// Connections the server closed (a close frame or EOF) while they were read: at most
    /// one per connection.
    pub closed_by_server: u64,
}

impl Tally {
    /// Records one delivery `latency_us` old; `is_ack` when it is the receiver's own message.
    pub fn record(&mut self, latency_us: u64, is_ack: bool) {
        let v = latency_us.clamp(1, MAX_TRACKED_US);
        self.delivered += 1;
        // `v` is within the histogram's bounds, so recording cannot fail.
        let _ = self.delivery_us.get_or_insert_with(new_histogram).record(v);
        if is_ack {
            self.acknowledged += 1;
            let _ = self.ack_us.get_or_insert_with(new_histogram).record(v);
        }
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Tally) {
        // Same bounds on both sides: adding cannot fail.
        for (mine, theirs) in [
            (&mut self.delivery_us, &other.delivery_us),
            (&mut self.ack_us, &other.ack_us),
        ] {
            if let Some(h) = theirs {
                let _ = mine.get_or_insert_with(new_histogram).add(h);
            }
        }
        self.delivered += other.delivered;
        self.acknowledged += other.acknowledged;
        self.misdelivered += other.misdelivered;
        self.errors += other.errors;
        self.closed_by_server += other.closed_by_server;
    }
}

/// Percentiles of one histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest value seen.
    pub max_ms: f64,
}

impl Percentiles {
    /// Summarizes a histogram of microseconds; all zero when it is empty or absent.
    pub fn of(h: Option<&Histogram<u64>>) -> Self {
        let Some(h) = h.filter(|h| !h.is_empty()) else {
            return Percentiles::default();
        };
        let ms = |us: u64| round3(us as f64 / 1000.0);
        Percentiles {
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// Rounds to three decimals, to keep the JSON short.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// One run, as printed on one JSON line.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Which server: `natter` or `ceiling`.
    pub target: String,
    /// Scenario label (`fanout`, `latency`, `ingress`, `dm`, `idle`, ...).
    pub scenario: String,
    /// Open WebSocket connections.
    pub connections: usize,
    /// Connections that sent.
    pub senders: usize,
    /// Messages per second per sender, when paced by rate.
    pub rate_per_sender: Option<f64>,
    /// Unacknowledged messages allowed per sender, when paced by window.
    pub window: Option<usize>,
    /// Seconds of sending.
    pub duration_s: f64,
    /// Messages the pacing called for; more than `sent` when a sender fell behind.
    pub intended: u64,
    /// Messages written to the sockets.
    pub sent: u64,
    /// Messages whose echo reached their sender.
    pub acknowledged: u64,
    /// Deliveries observed (the echoes included).
    pub delivered: u64,
    /// Deliveries the routing calls for: every connection for a group message, both
    /// parties' connections for a direct one.
    pub expected_deliveries: u64,
    /// `delivered / expected_deliveries`.
    pub delivery_ratio: f64,
    /// Deliveries per second of the run (sending plus the drain).
    pub delivered_per_s: f64,
    /// Acknowledgements per second.
    pub acknowledged_per_s: f64,
    /// Send→receive latency of all deliveries.
    pub latency: Percentiles,
    /// Send→echo latency at the senders.
    pub ack_latency: Percentiles,
    /// Deliveries to a connection that was not a party of the direct message.
    pub misdelivered: u64,
    /// Error frames, failed connects, failed reads and writes; not the server's closes.
    pub errors: u64,
    /// Connections the server closed during the run (a close frame or EOF while we still
    /// read, e.g. the ceiling's 1013 "too slow" or natter's 1008 write timeout), counted
    /// once per connection.
    pub closed_by_server: u64,
    /// Seconds to open all connections (their `ready` frames included).
    pub connect_s: f64,
    /// Per-connection connect time.
    pub connect_latency: Percentiles,
    /// CPU seconds the server used during the run (sending and drain).
    pub server_cpu_s: f64,
    /// Server CPU per delivery, µs: what a delivery costs, independent of the offered rate.
    /// With several instances, all of them together.
    pub server_cpu_us_per_delivery: f64,
    /// natter-server processes measured (more than one in cluster runs).
    pub instances: usize,
    /// Cluster runs: CPU seconds of each instance during the run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub instance_cpu_s: Vec<f64>,
    /// Cluster runs: CPU seconds Redis used during the run.
    pub redis_cpu_s: f64,
    /// Runs on PostgreSQL: CPU seconds PostgreSQL used during the run (every `postgres`
    /// process on the machine).
    pub postgres_cpu_s: f64,
    /// Cores the load generator itself used during the run (the machine is shared).
    pub client_cores: f64,
    /// Busy threads of the CPU hog beside the run (0 when there was none).
    pub hog_threads: usize,
    /// Cores that hog used during the run.
    pub hog_cores: f64,
    /// Share of one core each server thread (by name, same names summed) used in the run.
    pub server_thread_cores: std::collections::BTreeMap<String, f64>,
    /// Server resident memory at the end of the run, KiB.
    pub server_rss_kib: u64,
    /// `(server_rss - rss before any connection) / connections`, KiB.
    pub rss_per_connection_kib: f64,
}

impl Report {
    /// Fills the derived fields from the merged tally and the run's wall time.
    pub fn fill(&mut self, tally: &Tally, elapsed_s: f64) {
        self.acknowledged = tally.acknowledged;
        self.delivered = tally.delivered;
        self.misdelivered = tally.misdelivered;
        self.errors += tally.errors;
        self.closed_by_server += tally.closed_by_server;
        self.delivery_ratio = if self.expected_deliveries == 0 {
            0.0
        } else {
            round3(tally.delivered as f64 / self.expected_deliveries as f64)
        };
        if elapsed_s > 0.0 {
            self.delivered_per_s = (tally.delivered as f64 / elapsed_s).round();
            self.acknowledged_per_s = (tally.acknowledged as f64 / elapsed_s).round();
        }
        self.latency = Percentiles::of(tally.delivery_us.as_ref());
        self.ack_latency = Percentiles::of(tally.ack_us.as_ref());
    }

    /// The JSON line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Merging adds counts and histograms; acks are counted as deliveries too.
    #[test]
    fn merge_adds_everything() {
        let mut a = Tally::default();
        a.record(1_000, true);
        a.record(2_000, false);
        let mut b = Tally::default();
        b.record(3_000, false);
        b.errors = 2;
        b.closed_by_server = 1;
        a.merge(&b);
        assert_eq!((a.delivered, a.acknowledged, a.errors), (3, 1, 2));
        assert_eq!(a.closed_by_server, 1);
        assert_eq!(a.delivery_us.map(|h| h.len()), Some(3));
        assert_eq!(a.ack_us.map(|h| h.len()), Some(1));
    }

    /// Percentiles come out in milliseconds; an empty histogram gives zeros, not a panic.
    #[test]
    fn percentiles_in_milliseconds() {
        let mut t = Tally::default();
        for us in 1..=1000 {
            t.record(us * 10, false);
        }
        let p = Percentiles::of(t.delivery_us.as_ref());
        assert!((p.p50_ms - 5.0).abs() < 0.01, "{p:?}");
        assert!((p.p99_ms - 9.9).abs() < 0.01, "{p:?}");
        assert!((p.max_ms - 10.0).abs() < 0.01, "{p:?}");
        assert_eq!(Percentiles::of(None), Percentiles::default());
    }

    /// Ratio and rates are derived from the tally and the elapsed time.
    #[test]
    fn report_derives_ratio_and_rates() {
        let mut t = Tally::default();
        for _ in 0..99 {
            t.record(500, false);
        }
        let mut r = Report {
            expected_deliveries: 100,
            ..Report::default()
        };
        r.fill(&t, 2.0);
        assert_eq!(r.delivery_ratio, 0.99);
        assert_eq!(r.delivered_per_s, 50.0);
        assert!(r.to_json().contains("\"delivery_ratio\":0.99"));
    }
}
