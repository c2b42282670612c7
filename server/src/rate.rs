//! Token buckets keyed by who is acting. Two uses:
//! - the send rate, per user: shared by REST and every WebSocket of that user, so opening
//!   more connections does not buy more sends;
//! - login attempts, per (case-folded) name: each attempt takes a token and a success gives
//!   it back, so only failures drain the bucket. Passwords cannot be guessed faster than
//!   the refill, and the owner is slowed only while someone is guessing.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Instant;

use crate::store::UserId;

/// Past this many buckets, full ones are dropped: they say nothing a new bucket would not,
/// and login names are chosen by strangers.
const PRUNE_AT: usize = 10_000;

/// Token buckets keyed by `K`.
pub struct RateLimiter<K = UserId> {
    per_sec: f64,
    burst: f64,
    // A std mutex: held for one arithmetic update.
    buckets: Mutex<HashMap<K, Bucket>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl<K: Hash + Eq> RateLimiter<K> {
    /// `per_sec` tokens per second with bursts of `burst`; `per_sec == 0` disables limiting.
    pub fn new(per_sec: f64, burst: u32) -> Self {
        RateLimiter {
            per_sec,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token from `key`'s bucket; `false` if it is empty.
    pub fn allow(&self, key: K) -> bool {
        self.allow_at(key, Instant::now())
    }

    /// Gives back a token taken by [`allow`](Self::allow) (a login that succeeded).
    pub fn refund(&self, key: &K) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = buckets.get_mut(key) {
            b.tokens = (b.tokens + 1.0).min(self.burst);
        }
    }

    fn allow_at(&self, key: K, now: Instant) -> bool {
        if self.per_sec == 0.0 {
            return true;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= PRUNE_AT && !buckets.contains_key(&key) {
            let (per_sec, burst) = (self.per_sec, self.burst);
            buckets.retain(|_, b| b.refilled(now, per_sec, burst) < burst);
        }
        let b = buckets.entry(key).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        b.tokens = b.refilled(now, self.per_sec, self.burst);
        b.updated = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Bucket {
    fn refilled(&self, now: Instant, per_sec: f64, burst: f64) -> f64 {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        (self.tokens + elapsed * per_sec).min(burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_rate() {
        let r = RateLimiter::new(10.0, 3);
        let t = Instant::now();
        let u = UserId(1);
        assert!((0..3).all(|_| r.allow_at(u, t)));
        assert!(!r.allow_at(u, t));
        assert!(!r.allow_at(u, t + Duration::from_millis(50)));
        assert!(r.allow_at(u, t + Duration::from_millis(160)));
        assert!(r.allow_at(UserId(2), t), "buckets are per user");
    }

    #[test]
    fn zero_disables() {
        let r = RateLimiter::<UserId>::new(0.0, 1);
        assert!((0..1000).all(|_| r.allow(UserId(1))));
    }

    #[test]
    fn refunds_and_pruning() {
        let r = RateLimiter::new(1.0, 2);
        let t = Instant::now();
        let alice = "alice".to_owned();
        assert!(r.allow_at(alice.clone(), t));
        r.refund(&alice);
        assert!(r.allow_at(alice.clone(), t) && r.allow_at(alice.clone(), t));
        assert!(
            !r.allow_at(alice.clone(), t),
            "two failures empty a bucket of two"
        );
        for i in 0..PRUNE_AT {
            r.allow_at(format!("u{i}"), t);
        }
        // Much later every stranger's bucket is full again and goes; alice's drained one
        // has refilled too.
        let later = t + Duration::from_secs(10);
        assert!(r.allow_at("new".to_owned(), later));
        let len = r.buckets.lock().unwrap().len();
        assert!(len < 10, "{len} buckets kept");
    }
}
