//! Per-user send rate: a token bucket per user, shared by REST and every WebSocket of that
//! user, so opening more connections does not buy more sends.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::store::UserId;

/// Token buckets keyed by user.
pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    // A std mutex: held for one arithmetic update.
    buckets: Mutex<HashMap<UserId, Bucket>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    /// `per_sec` sends per second with bursts of `burst`; `per_sec == 0` disables limiting.
    pub fn new(per_sec: u32, burst: u32) -> Self {
        RateLimiter {
            per_sec: f64::from(per_sec),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one send from `user`'s bucket; `false` if it is empty.
    pub fn allow(&self, user: UserId) -> bool {
        self.allow_at(user, Instant::now())
    }

    fn allow_at(&self, user: UserId, now: Instant) -> bool {
        if self.per_sec == 0.0 {
            return true;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = buckets.entry(user).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_sec).min(self.burst);
        b.updated = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_rate() {
        let r = RateLimiter::new(10, 3);
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
        let r = RateLimiter::new(0, 1);
        assert!((0..1000).all(|_| r.allow(UserId(1))));
    }
}
