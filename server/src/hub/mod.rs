//! The hub: who is connected, and who receives what.
//!
//! `Username key → {ConnId → Peer}`, behind a std mutex that is never held across an await
//! (publishing is a loop of `try_send`, called from the store's writer thread). Each message
//! is serialized once; every receiving connection gets a clone of the same bytes.
//!
//! Queues are bounded, and a full one cuts nobody. A connection whose queue is full is
//! marked *lagging*: the hub stops queueing for it and wakes its task, which sends what is
//! queued and then asks [`Hub::catch_up`] for what it missed, page by page. The hub keeps
//! the frames of the latest messages ([`recent`]) and hands out clones of them; what is
//! older than those, the connection reads from the store (everything is there: the hub
//! only ever sees committed messages). The page that reaches the newest message also ends
//! the lag, under the same lock `publish` takes, so nothing published can fall between the
//! last page and live delivery. Skipping one message but queueing a later one would open a
//! gap, so after the first miss no message is queued until then. Presence changes while
//! lagging are not lost either: the hub keeps the newest one per user for the connection
//! and hands them over with that last page. Memory per connection stays bounded by the
//! queue, plus one presence frame per user whose status changed meanwhile.
//!
//! Presence is cluster-wide. A user is online while they have a connection here or on
//! another instance; the bus tells the hub about the others ([`Hub::remote_presence`]), and
//! the hub reports this instance's first and last connections back to it. Frames go out
//! only when the union flips: a user's first connection anywhere, their last one anywhere.
//! Reports from different instances can arrive out of order (a user's new connection on B
//! announced after their old one on A closed), so with a bus an offline frame waits
//! [`OFFLINE_GRACE`]: if the user is back within it, nobody is told anything
//! ([`Hub::flush_leaving`] sends the ones whose grace ran out).
//!
//! Data flows: the writer's commit → [`Hub::publish`] (`fanout`: who receives each message)
//! → each receiver's queue (`queue`) → its connection task, or, lagging, [`Hub::catch_up`].
//!
//! Layout: this file (the [`Hub`], its lock and the state behind it, counts and metrics),
//! `registry` (connections added and removed, by user), `fanout` (who receives what),
//! `queue` (per-connection queues, lag and catch-up), `presence` (who is online
//! cluster-wide, the offline grace, reports to the bus), `recent` (the latest messages'
//! frames, for catching up), `tests`.

mod fanout;
mod presence;
mod queue;
mod recent;
mod registry;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use natter_shared::{MessageId, Username};

pub use self::queue::{CatchUp, Outbound, Subscription};
use self::registry::UserConns;

/// With a bus, how long a user must stay offline everywhere before they are announced
/// offline: longer than presence reports take between instances.
pub const OFFLINE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// A connection's id, unique for the life of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(pub u64);

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

struct Inner {
    users: HashMap<String, UserConns>,
    /// Users online on other instances (the bus's view), by case-folded name.
    remote: HashMap<String, Username>,
    /// Users offline everywhere whose offline frame waits for [`OFFLINE_GRACE`] (with a
    /// bus only): when it was due.
    leaving: HashMap<String, (Username, std::time::Instant)>,
    /// The newest message id published; see [`Subscription::live_after`].
    last_published: MessageId,
    /// The latest messages' frames, for catching up.
    recent: recent::Recent,
    /// Open connections, all users together.
    conns: usize,
}

/// Connected users and their queues.
pub struct Hub {
    inner: Mutex<Inner>,
    /// Where first and last connections here are reported (the bus), if anywhere.
    reports: Option<tokio::sync::mpsc::UnboundedSender<crate::bus::LocalPresence>>,
    next_id: AtomicU64,
    queue_capacity: usize,
    connections_open: metrics::Gauge,
    users_online: metrics::Gauge,
}

impl Hub {
    /// A hub whose per-connection queues hold `queue_capacity` frames, and which keeps up to
    /// `recent_bytes` of the latest messages' frames for connections catching up.
    pub fn new(queue_capacity: usize, recent_bytes: usize) -> Self {
        Hub {
            reports: None,
            inner: Mutex::new(Inner {
                users: HashMap::new(),
                remote: HashMap::new(),
                leaving: HashMap::new(),
                last_published: MessageId(0),
                recent: recent::Recent::new(recent_bytes),
                conns: 0,
            }),
            next_id: AtomicU64::new(1),
            queue_capacity: queue_capacity.max(1),
            connections_open: metrics::gauge!(crate::metrics::CONNECTIONS_OPEN),
            users_online: metrics::gauge!(crate::metrics::USERS_ONLINE),
        }
    }

    /// The same hub, reporting users' first and last connections here to `reports`.
    pub fn reporting_presence(
        mut self,
        reports: Option<tokio::sync::mpsc::UnboundedSender<crate::bus::LocalPresence>>,
    ) -> Self {
        self.reports = reports;
        self
    }

    /// Tells the hub the newest message already in the store at start, so a connection that
    /// registers before anything is published knows where live delivery begins.
    pub fn stored_up_to(&self, id: MessageId) {
        let mut inner = self.lock();
        inner.last_published = inner.last_published.max(id);
        inner.recent.stored_up_to(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves the map consistent (every update is a
        // single insert, remove or flag), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count(&self, inner: &Inner) {
        self.connections_open.set(inner.conns as f64);
        self.users_online.set(inner.users.len() as f64);
    }

    /// Whether `user` has at least one connection, here or on another instance.
    pub fn is_online(&self, user: &Username) -> bool {
        let key = user.key();
        let inner = self.lock();
        inner.users.contains_key(&key) || inner.remote.contains_key(&key)
    }

    /// Open connections, all users together.
    pub fn connection_count(&self) -> usize {
        self.lock().conns
    }
}
