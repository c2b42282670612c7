//! Caps on open connections, so that no client and no account can take every slot (or
//! every file descriptor) of the process.
//!
//! - WebSockets: `max_connections` in all, and `max_connections_per_user` for any one
//!   account, both taken before the 101 and given back when the connection task ends.
//! - Plain HTTP connections (everything not yet upgraded): `max_http_connections`. A TCP
//!   connection holds an HTTP slot from accept until it closes or upgrades (then it holds a
//!   WebSocket slot instead). Past the cap the *newest* is refused: it gets a one-request
//!   answer (`/healthz` and `/livez` still say ok, anything else 503), and beyond a few of
//!   those it is closed at once, so slow or idle clients cannot starve the ones already in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use natter_shared::Username;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Config;
use crate::error::ServerError;

/// Connections past the HTTP cap that are still answered (one request each, quickly)
/// rather than closed unread.
const OVER_CAP_ANSWERED: usize = 64;

/// Open-connection counters, shared by the accept loop and the upgrade handler.
pub struct ConnectionLimits {
    websockets: Arc<Semaphore>,
    per_user_max: usize,
    // A std mutex: held for one map update, never across an await.
    per_user: Arc<Mutex<HashMap<String, usize>>>,
    http: Arc<Semaphore>,
    over_cap: Arc<Semaphore>,
}

/// A WebSocket's slot, in all and for its user; freed on drop.
pub struct WsPermit {
    _total: OwnedSemaphorePermit,
    user_key: String,
    per_user: Arc<Mutex<HashMap<String, usize>>>,
}

/// What an accepted TCP connection may do.
pub enum HttpSlot {
    /// Serve it normally while this is held.
    Normal(OwnedSemaphorePermit),
    /// At the cap: answer one request, refusing it unless it is a health check.
    OverCap(OwnedSemaphorePermit),
    /// Far past the cap: close it unread.
    Refused,
}

impl ConnectionLimits {
    /// The caps from `config`.
    pub fn new(config: &Config) -> Self {
        ConnectionLimits {
            websockets: Arc::new(Semaphore::new(config.max_connections)),
            per_user_max: config.max_connections_per_user.max(1),
            per_user: Arc::new(Mutex::new(HashMap::new())),
            http: Arc::new(Semaphore::new(config.max_http_connections.max(1))),
            over_cap: Arc::new(Semaphore::new(OVER_CAP_ANSWERED)),
        }
    }

    /// A WebSocket slot for `user`, or the refusal to answer the upgrade with.
    pub fn try_websocket(&self, user: &Username) -> Result<WsPermit, ServerError> {
        let total = Arc::clone(&self.websockets)
            .try_acquire_owned()
            .map_err(|_| ServerError::TooManyConnections)?;
        let key = user.key();
        let mut per_user = self.per_user.lock().unwrap_or_else(|p| p.into_inner());
        let open = per_user.entry(key.clone()).or_insert(0);
        if *open >= self.per_user_max {
            return Err(ServerError::TooManyUserConnections(self.per_user_max));
        }
        *open += 1;
        Ok(WsPermit {
            _total: total,
            user_key: key,
            per_user: Arc::clone(&self.per_user),
        })
    }

    /// What to do with a newly accepted TCP connection.
    pub fn http_slot(&self) -> HttpSlot {
        if let Ok(p) = Arc::clone(&self.http).try_acquire_owned() {
            return HttpSlot::Normal(p);
        }
        match Arc::clone(&self.over_cap).try_acquire_owned() {
            Ok(p) => HttpSlot::OverCap(p),
            Err(_) => HttpSlot::Refused,
        }
    }
}

impl Drop for WsPermit {
    fn drop(&mut self) {
        let mut per_user = self.per_user.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(open) = per_user.get_mut(&self.user_key) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                per_user.remove(&self.user_key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_user: usize, http: usize) -> ConnectionLimits {
        let mut c = Config::new("unused.db");
        c.max_connections = total;
        c.max_connections_per_user = per_user;
        c.max_http_connections = http;
        ConnectionLimits::new(&c)
    }

    /// One account cannot take more than its share; its slots come back when dropped, and
    /// other accounts are unaffected.
    #[test]
    fn per_user_cap() {
        let l = limits(10, 2, 1);
        let alice = Username::parse("alice").unwrap();
        let a1 = l.try_websocket(&alice).unwrap();
        let _a2 = l.try_websocket(&Username::parse("ALICE").unwrap()).unwrap();
        assert!(matches!(
            l.try_websocket(&alice),
            Err(ServerError::TooManyUserConnections(2))
        ));
        assert!(l.try_websocket(&Username::parse("bob").unwrap()).is_ok());
        drop(a1);
        assert!(l.try_websocket(&alice).is_ok());
    }

    /// Past the HTTP cap the newest connections are answered over-cap, then refused.
    #[test]
    fn http_cap_refuses_the_newest() {
        let l = limits(10, 2, 1);
        let first = l.http_slot();
        assert!(matches!(first, HttpSlot::Normal(_)));
        let over: Vec<_> = (0..OVER_CAP_ANSWERED).map(|_| l.http_slot()).collect();
        assert!(over.iter().all(|s| matches!(s, HttpSlot::OverCap(_))));
        assert!(matches!(l.http_slot(), HttpSlot::Refused));
        drop(first);
        assert!(matches!(l.http_slot(), HttpSlot::Normal(_)));
    }
}
