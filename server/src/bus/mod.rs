//! The bus: how committed messages reach this instance's connections — in id order, exactly
//! once, whoever committed them — and, with several instances, how they tell each other.
//!
//! One instance (SQLite, or PostgreSQL alone) has no bus: its writer is the only source of
//! messages. Several instances on one PostgreSQL database share a Redis server (`--bus`):
//!
//! ```text
//!   writer ──committed──▶ Feed ──▶ hub (this instance's connections)
//!                          │  ▲
//!          own commits ────┘  └──── offer ◀── subscriber ◀── Redis ◀── other instances
//!              ▼                       (gap? fill from PostgreSQL first)
//!          publisher ──▶ Redis
//! ```
//!
//! **PostgreSQL is the truth; Redis only makes it fast.** [`Feed`] owns the one cursor,
//! "delivered up to", and hands the hub only the message right after it, so nothing is
//! delivered twice or out of order whichever path brings it first. Ids are dense and become
//! visible in id order (see `store::postgres::writer`), so a message that arrives past the
//! cursor proves a gap (a lost Redis message, an instance killed between its commit and its
//! publish, a subscriber that was reconnecting): the subscriber reads the missing ids from
//! PostgreSQL before delivering it, and never skips. When Redis is down nothing arrives at
//! all; the writer's idle probe, which reads any ids past the cursor every second, keeps
//! delivery going (polling) until Redis is back.
//!
//! Layout: this file (the [`Bus`]: its state for `/readyz` and metrics, and the queues to
//! the Redis tasks; what the hub reports), `feed` (the [`Feed`]: delivered once, in id
//! order; gaps), `target` (what `--bus` and the instance name name, checked), `presence`
//! (who is online on the other instances: pure bookkeeping), `redis` (the tasks that talk
//! to Redis: the publisher, the subscriber and its reconnect loop, gap filling, this
//! instance's presence entry, and the wire codec they share), `tests`.

mod feed;
mod presence;
mod redis;
mod target;
#[cfg(test)]
mod tests;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};

use natter_shared::{Message, Username};
use tokio::sync::mpsc;

pub use self::feed::{Feed, Gap};
pub use self::redis::start;
pub use self::target::{
    BusArgError, BusTarget, check_bus_prefix, check_bus_url, check_instance_name, hostname,
};

/// Batches of this instance's commits that may wait for the Redis publisher. Past it a batch
/// is not published: the other instances fill it from PostgreSQL when they notice the gap.
const OUTGOING_QUEUE: usize = 1024;

/// Where the bus stands, for `/readyz` and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BusState {
    /// No bus: one instance alone (SQLite, or PostgreSQL without `--bus`).
    None,
    /// Redis is connected: other instances' messages arrive as they commit.
    Connected,
    /// Redis is configured but out of reach: other instances' messages arrive by polling
    /// PostgreSQL, within about a second.
    Polling,
}

impl BusState {
    /// As `/readyz` names it.
    pub fn as_str(self) -> &'static str {
        match self {
            BusState::None => "none",
            BusState::Connected => "redis",
            BusState::Polling => "polling",
        }
    }
}

/// What this instance tells the others through Redis.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// Messages this instance just committed, in id order.
    Messages(Vec<Message>),
    /// A token logged out here: every instance forgets it.
    Revoked([u8; 32]),
}

/// The bus as the rest of the server sees it: its state, and what to tell the others.
pub struct Bus {
    state: AtomicU8,
    outgoing: Option<mpsc::Sender<Outgoing>>,
    /// The hub's end of the presence reports; `None` without a bus.
    presence: Option<mpsc::UnboundedSender<LocalPresence>>,
    /// The receiving ends, taken by [`start`].
    pending: Mutex<Option<mpsc::Receiver<Outgoing>>>,
    presence_pending: Mutex<Option<mpsc::UnboundedReceiver<LocalPresence>>>,
    target: Option<BusTarget>,
}

impl Bus {
    /// A bus for `target` (none for one instance alone). Until [`start`] connects it, a
    /// configured bus counts as polling.
    pub fn new(target: Option<BusTarget>) -> Bus {
        let bus = match &target {
            None => Bus {
                state: AtomicU8::new(BusState::None as u8),
                outgoing: None,
                presence: None,
                pending: Mutex::new(None),
                presence_pending: Mutex::new(None),
                target,
            },
            Some(_) => {
                let (tx, rx) = mpsc::channel(OUTGOING_QUEUE);
                // Unbounded, but drained at once by the presence task, which only updates
                // its own map while Redis is away; one entry per first or last connection.
                let (presence_tx, presence_rx) = mpsc::unbounded_channel();
                Bus {
                    state: AtomicU8::new(BusState::Polling as u8),
                    outgoing: Some(tx),
                    presence: Some(presence_tx),
                    pending: Mutex::new(Some(rx)),
                    presence_pending: Mutex::new(Some(presence_rx)),
                    target,
                }
            }
        };
        bus.set_state(bus.state());
        bus
    }

    /// Where the hub reports users' first and last connections here; `None` without a bus.
    pub fn presence_reports(&self) -> Option<mpsc::UnboundedSender<LocalPresence>> {
        self.presence.clone()
    }

    /// Where the bus stands now.
    pub fn state(&self) -> BusState {
        match self.state.load(Ordering::Relaxed) {
            1 => BusState::Connected,
            2 => BusState::Polling,
            _ => BusState::None,
        }
    }

    fn set_state(&self, state: BusState) {
        self.state.store(state as u8, Ordering::Relaxed);
        metrics::gauge!(crate::metrics::BUS_CONNECTED).set(f64::from(state == BusState::Connected));
        metrics::gauge!(crate::metrics::BUS_POLLING).set(f64::from(state == BusState::Polling));
    }

    /// Tells the other instances that a token was revoked here (they may have it cached).
    pub fn token_revoked(&self, hash: [u8; 32]) {
        self.tell(Outgoing::Revoked(hash));
    }

    /// Queues `out` for the publisher without waiting; when the queue is full it is
    /// dropped, which the others survive (a lost message is a gap they fill; a lost
    /// revocation is covered by their dropping cached tokens when Redis comes back).
    fn tell(&self, out: Outgoing) {
        if let Some(tx) = &self.outgoing
            && tx.try_send(out).is_err()
        {
            metrics::counter!(crate::metrics::BUS_DROPPED).increment(1);
        }
    }
}

/// A user's presence on this instance changed: their first connection here opened, or
/// their last one here closed. The hub reports these; the Redis presence task tells the
/// other instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPresence {
    /// Who.
    pub user: Username,
    /// Whether they now have a connection here.
    pub online: bool,
}
