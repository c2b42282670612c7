//! The tasks that talk to Redis, started once the instance is listening ([`start`]):
//!
//! - the **publisher** (`publisher`) sends this instance's commits and token revocations
//!   (`PUBLISH`);
//! - the **subscriber** (`subscriber`) holds the pub/sub connection, hands other instances'
//!   batches to the [`Feed`](super::Feed) (filling gaps from PostgreSQL first: `gaps`),
//!   forgets revoked tokens, passes presence events on, and notices Redis going away and
//!   coming back — logged once each way, not per message;
//! - the **presence** task (`presence`) owns this instance's entry in Redis (a hash of its
//!   users, kept alive by a heartbeat: killed, it expires within [`PRESENCE_TTL`]) and the
//!   view of the others' (`bus::presence`'s `ClusterPresence`), and tells the hub whose
//!   presence flipped.
//!
//! Data flows: the instance → publisher → Redis → the other instances' subscribers → feed
//! (via `gaps`) or the auth cache or their presence task → hub. What travels on each channel
//! is `codec`'s.
//!
//! Layout: this file ([`start`], the timings every task shares, the channel and key names),
//! `codec` (the JSON payloads, token hashes as hex), `publisher`, `subscriber`, `gaps`,
//! `presence`.
//!
//! Names, all under the prefix `P`: channels `P:messages`, `P:tokens`, `P:presence`; keys
//! `P:instances` (a set of instance names) and `P:presence:NAME` (that instance's hash: a
//! field per user, plus `#run` and `#seq`; user names cannot contain `#`).
//!
//! Every Redis call is bounded by [`REDIS_TIMEOUT`]; every task ends when shutdown starts.

mod codec;
mod gaps;
mod presence;
mod publisher;
mod subscriber;

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::mpsc;

use self::codec::PresenceEvent;
use self::presence::presence;
use self::publisher::publish;
use self::subscriber::subscribe;
use crate::state::AppState;

/// Longest any one Redis call may take.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the subscriber checks that Redis still answers (a Redis that hangs sends no
/// EOF), and the presence task refreshes its entry and rereads the others'.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// An instance's presence entry outlives its last heartbeat by this much: a killed
/// instance's users are shown offline within `PRESENCE_TTL + HEARTBEAT` (20 s).
const PRESENCE_TTL: Duration = Duration::from_secs(15);

/// Waits between attempts to reach Redis again.
const RECONNECT: [Duration; 4] = [
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
];

/// Local presence changes sent in one Redis transaction, at most.
const PRESENCE_BATCH: usize = 512;

/// Channel and key names.
#[derive(Clone)]
struct Names {
    messages: String,
    tokens: String,
    presence: String,
    instances: String,
    prefix: String,
}

impl Names {
    fn new(prefix: &str) -> Names {
        Names {
            messages: format!("{prefix}:messages"),
            tokens: format!("{prefix}:tokens"),
            presence: format!("{prefix}:presence"),
            instances: format!("{prefix}:instances"),
            prefix: prefix.to_owned(),
        }
    }

    fn entry(&self, instance: &str) -> String {
        format!("{}:presence:{instance}", self.prefix)
    }
}

/// What the subscriber tells the presence task.
enum FromSubscriber {
    /// Another instance's presence event.
    Event(PresenceEvent),
    /// Redis is reachable again after an outage (or for the first time): rewrite our entry,
    /// reread everyone's.
    Connected,
}

/// Starts the Redis tasks for `instance`, if the server has a bus; a no-op without one.
pub fn start(state: &Arc<AppState>, instance: &str) {
    let Some(target) = state.bus.target.clone() else {
        return;
    };
    let (Some(outgoing), Some(local)) = (
        state
            .bus
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(),
        state
            .bus
            .presence_pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(),
    ) else {
        tracing::error!("the bus was started twice");
        return;
    };
    let client = match redis::Client::open(target.url.as_str()) {
        Ok(c) => c,
        Err(e) => {
            // Checked when the flag was parsed; this is for `Config` built in code.
            tracing::error!(error = %e, "cannot use the Redis URL; running without the bus (polling)");
            return;
        }
    };
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(REDIS_TIMEOUT))
        .set_response_timeout(Some(REDIS_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_secs(1));
    let manager = match ConnectionManager::new_lazy_with_config(client.clone(), config) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "cannot set up the Redis connection; running without the bus (polling)");
            return;
        }
    };
    let names = Names::new(&target.prefix);
    let (to_presence, from_subscriber) = mpsc::unbounded_channel();
    state.tasks.spawn(publish(
        Arc::clone(state),
        manager.clone(),
        names.clone(),
        instance.to_owned(),
        outgoing,
    ));
    state.tasks.spawn(subscribe(
        Arc::clone(state),
        client,
        names.clone(),
        instance.to_owned(),
        // What the log shows: never the password.
        target.to_string(),
        to_presence,
    ));
    state.tasks.spawn(presence(
        Arc::clone(state),
        manager,
        names,
        instance.to_owned(),
        local,
        from_subscriber,
    ));
}
