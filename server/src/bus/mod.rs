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
//! Layout: this file (the feed, the bus's state for `/readyz` and metrics, and what
//! `--bus` names), `presence` (who is online on the other instances: pure bookkeeping),
//! `redis` (the tasks that talk to Redis: the publisher, the subscriber and its reconnect
//! loop, gap filling, this instance's presence entry, and the wire codec they share).

mod presence;
mod redis;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use natter_shared::{Message, MessageId, Username};
use tokio::sync::mpsc;

use crate::hub::Hub;
use crate::store::CommitSink;

pub use self::redis::start;

/// Batches of this instance's commits that may wait for the Redis publisher. Past it a batch
/// is not published: the other instances fill it from PostgreSQL when they notice the gap.
const OUTGOING_QUEUE: usize = 1024;

/// What `--bus` names: a Redis server, and the prefix of every key and channel natter uses
/// on it (Redis pub/sub ignores the database number, so the prefix is what keeps two
/// deployments — or two test runs — on one Redis apart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusTarget {
    /// `redis://HOST:PORT[/DB]`.
    pub url: String,
    /// Keys and channels start with `PREFIX:`.
    pub prefix: String,
}

/// Why a `--bus` value, prefix or instance name is refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BusArgError(String);

impl BusTarget {
    /// Checks a `redis://` URL and a prefix.
    pub fn parse(url: &str, prefix: &str) -> Result<BusTarget, BusArgError> {
        if !url.starts_with("redis://") {
            return Err(BusArgError(format!(
                "{url:?} is not a redis:// URL (expected redis://HOST:PORT[/DB])"
            )));
        }
        ::redis::Client::open(url)
            .map_err(|e| BusArgError(format!("{url:?} is not a usable Redis URL: {e}")))?;
        if !is_name(prefix) {
            return Err(BusArgError(format!(
                "bus prefix {prefix:?} must be 1 to 64 letters, digits, '.', '_', '-' or ':'"
            )));
        }
        Ok(BusTarget {
            url: url.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

/// The URL as logs show it: a password in it becomes `***`.
impl std::fmt::Display for BusTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rest = self.url.strip_prefix("redis://").unwrap_or(&self.url);
        match rest.rsplit_once('@') {
            None => write!(f, "redis://{rest}"),
            Some((userinfo, host)) => {
                let user = userinfo.split_once(':').map_or("", |(u, _)| u);
                write!(f, "redis://{user}:***@{host}")
            }
        }
    }
}

/// Checks a `--bus` URL on its own (the prefix is checked with it in [`BusTarget::parse`]).
pub fn check_bus_url(url: &str) -> Result<String, BusArgError> {
    BusTarget::parse(url, "natter").map(|t| t.url)
}

/// Checks a `--bus-prefix`.
pub fn check_bus_prefix(prefix: &str) -> Result<String, BusArgError> {
    BusTarget::parse("redis://127.0.0.1", prefix).map(|t| t.prefix)
}

/// Checks an instance name: what logs, presence bookkeeping and metrics call this process.
pub fn check_instance_name(name: &str) -> Result<(), BusArgError> {
    if is_name(name) {
        Ok(())
    } else {
        Err(BusArgError(format!(
            "instance name {name:?} must be 1 to 64 letters, digits, '.', '_', '-' or ':'"
        )))
    }
}

/// This machine's name, for the default instance name (`HOST:PORT`); `localhost` if the
/// system will not say.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| is_name(h))
        .unwrap_or_else(|| "localhost".to_owned())
}

fn is_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b))
}

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

/// The one owner of "delivered up to": every message reaches the hub through here, once,
/// in id order. A std mutex, held while handing a batch to the hub (which takes its own
/// lock after it, never the other way round) and never across an await.
pub struct Feed {
    delivered: Mutex<MessageId>,
    hub: Arc<Hub>,
    bus: Arc<Bus>,
}

/// A batch that cannot be delivered yet: the ids in `(after, before)` come first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// The cursor: delivered up to here.
    pub after: MessageId,
    /// The first id of the batch offered.
    pub before: MessageId,
}

impl Feed {
    /// A feed into `hub` that tells `bus` about this instance's own commits.
    pub fn new(hub: Arc<Hub>, bus: Arc<Bus>) -> Feed {
        Feed {
            delivered: Mutex::new(MessageId(0)),
            hub,
            bus,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MessageId> {
        // A bare id: a panic cannot leave it half-written.
        self.delivered.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands the hub the messages past the cursor (all of them in id order, the first right
    /// after it) and moves the cursor.
    fn deliver(&self, delivered: &mut MessageId, messages: &[Message]) {
        let start = messages.partition_point(|m| m.id <= *delivered);
        let fresh = &messages[start..];
        if let Some(last) = fresh.last() {
            self.hub.publish(fresh);
            *delivered = last.id;
        }
    }

    /// Another instance's batch, from the bus. Delivered if it follows the cursor (what was
    /// already delivered is skipped); a [`Gap`] if ids before it are missing.
    pub fn offer(&self, messages: &[Message]) -> Result<(), Gap> {
        let mut delivered = self.lock();
        let start = messages.partition_point(|m| m.id <= *delivered);
        match messages.get(start) {
            None => Ok(()),
            Some(first) if first.id.0 > delivered.0 + 1 => Err(Gap {
                after: *delivered,
                before: first.id,
            }),
            Some(_) => {
                self.deliver(&mut delivered, &messages[start..]);
                Ok(())
            }
        }
    }

    /// The messages read from PostgreSQL for the ids in `(after, through]` (every one of
    /// which has committed): delivered, and the cursor moved to `through` at least.
    pub fn fill(&self, through: MessageId, messages: &[Message]) {
        let mut delivered = self.lock();
        self.deliver(&mut delivered, messages);
        *delivered = (*delivered).max(through);
        metrics::counter!(crate::metrics::BUS_GAP_FILLS).increment(1);
    }
}

impl CommitSink for Feed {
    fn stored_up_to(&self, id: MessageId) {
        let mut delivered = self.lock();
        *delivered = (*delivered).max(id);
        self.hub.stored_up_to(id);
    }

    fn delivered(&self) -> MessageId {
        *self.lock()
    }

    fn found(&self, messages: &[Message]) {
        let mut delivered = self.lock();
        self.deliver(&mut delivered, messages);
    }

    fn committed(&self, messages: &[Message]) {
        {
            let mut delivered = self.lock();
            self.deliver(&mut delivered, messages);
        }
        if self.bus.outgoing.is_some() {
            self.bus.tell(Outgoing::Messages(messages.to_vec()));
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

#[cfg(test)]
mod tests {
    use super::*;
    use natter_shared::Timestamp;

    fn msg(id: i64) -> Message {
        Message {
            id: MessageId(id),
            sender_username: Username::parse("a").unwrap(),
            receiver_username: None,
            text: format!("m{id}"),
            created_at: Timestamp::now(),
            client_id: None,
        }
    }

    /// A password in the bus URL never reaches the log.
    #[test]
    fn bus_urls_are_shown_without_their_password() {
        let shown = |u: &str| BusTarget::parse(u, "p").unwrap().to_string();
        assert_eq!(shown("redis://10.0.0.5:6379/2"), "redis://10.0.0.5:6379/2");
        assert_eq!(
            shown("redis://:s3cret@10.0.0.5:6379"),
            "redis://:***@10.0.0.5:6379"
        );
        assert_eq!(shown("redis://bob:s3cret@h:1"), "redis://bob:***@h:1");
        assert!(BusTarget::parse("redis://h", "bad prefix").is_err());
        assert!(check_instance_name("chat-1").is_ok() && check_instance_name("").is_err());
    }

    fn feed() -> (Feed, crate::hub::Subscription) {
        let hub = Arc::new(Hub::new(64, 1 << 20));
        let sub = hub.register(&Username::parse("watcher").unwrap());
        let feed = Feed::new(Arc::clone(&hub), Arc::new(Bus::new(None)));
        feed.stored_up_to(MessageId(10));
        (feed, sub)
    }

    fn ids(sub: &mut crate::hub::Subscription) -> Vec<i64> {
        std::iter::from_fn(|| sub.rx.try_recv().ok())
            .filter_map(|o| match o {
                crate::hub::Outbound::Message { id, .. } => Some(id.0),
                crate::hub::Outbound::Presence { .. } => None,
            })
            .collect()
    }

    /// Whichever path brings a message first delivers it; the other is skipped; a batch past
    /// the cursor is a gap, delivered only after the fill.
    #[test]
    fn each_message_once_in_order_and_gaps_are_filled_not_skipped() {
        let (feed, mut sub) = feed();
        feed.committed(&[msg(11), msg(12)]);
        assert_eq!(feed.offer(&[msg(11), msg(12)]), Ok(()), "already delivered");
        assert_eq!(feed.offer(&[msg(12), msg(13)]), Ok(()), "overlap: 13 only");
        assert_eq!(
            feed.offer(&[msg(16), msg(17)]),
            Err(Gap {
                after: MessageId(13),
                before: MessageId(16)
            })
        );
        assert_eq!(ids(&mut sub), vec![11, 12, 13], "nothing past the gap");
        feed.fill(MessageId(15), &[msg(14), msg(15)]);
        assert_eq!(feed.offer(&[msg(16), msg(17)]), Ok(()));
        // The writer finds what the bus already brought: nothing twice.
        feed.found(&[msg(15), msg(16), msg(17), msg(18)]);
        assert_eq!(ids(&mut sub), vec![14, 15, 16, 17, 18]);
        assert_eq!(feed.delivered(), MessageId(18));
    }
}
