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

mod recent;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use natter_shared::{Message, MessageId, ServerFrame, Username};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Message as WsMessage;

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

/// A frame queued for one connection.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A chat message; its id lets a connection skip what it already sent.
    Message {
        /// The message's id.
        id: MessageId,
        /// The encoded frame; cloning shares the bytes.
        frame: WsMessage,
    },
    /// A user came online or went offline.
    Presence {
        /// Whose status (case-folded name): a newer change replaces an older one.
        user_key: String,
        /// The encoded frame.
        frame: WsMessage,
    },
}

impl Outbound {
    /// The encoded frame.
    pub fn frame(&self) -> &WsMessage {
        match self {
            Outbound::Message { frame, .. } | Outbound::Presence { frame, .. } => frame,
        }
    }
}

/// What a connection holds after registering.
pub struct Subscription {
    /// This connection's id.
    pub id: ConnId,
    /// Frames to send, in order.
    pub rx: mpsc::Receiver<Outbound>,
    /// Notified when the queue overflowed: the hub queues no more messages until the
    /// connection has caught up through [`Hub::catch_up`].
    pub lagged: Arc<Notify>,
    /// The newest message id published before this connection registered: every later one
    /// is queued for it (or, if it lags, left for it to read from the store).
    pub live_after: MessageId,
}

struct Peer {
    tx: mpsc::Sender<Outbound>,
    lagged: Arc<Notify>,
    /// Set by the hub when the queue overflowed, cleared by [`Hub::catch_up`]'s last page.
    lagging: bool,
    /// While lagging: the newest presence frame per user, handed over with the last catch-up page.
    missed_presence: HashMap<String, Outbound>,
}

struct UserConns {
    username: Username,
    conns: HashMap<ConnId, Peer>,
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

/// One step of catching up: what [`Hub::catch_up`] answers.
pub enum CatchUp {
    /// Frames of missed messages, in id order, from the hub's recent frames.
    Recent {
        /// The messages' frames.
        frames: Vec<Outbound>,
        /// With the last page: the presence changes missed (the newest per user), to send
        /// after the messages (and after `ready`, during a replay).
        presence: Vec<Outbound>,
        /// Everything the user may see up to this id is in `frames`: the new cursor.
        through: MessageId,
        /// These were the last: the hub queues for the connection again.
        caught_up: bool,
    },
    /// The hub no longer holds every message after the cursor: read a page from the store.
    /// Every message with an id up to `complete_after` was committed before this answer, so
    /// once a store read after it comes back short, the cursor may move up to it.
    Store {
        /// See above.
        complete_after: MessageId,
    },
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

    /// Called under the lock, so reports leave in the order the changes happened.
    fn report(&self, user: &Username, online: bool) {
        if let Some(tx) = &self.reports {
            let _ = tx.send(crate::bus::LocalPresence {
                user: user.clone(),
                online,
            });
        }
    }

    /// Whether `user` is online on another instance now (from the bus). Everyone here is
    /// told when that makes them online or offline cluster-wide.
    pub fn remote_presence(&self, user: &Username, online: bool) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let key = user.key();
        let flipped = if online {
            inner.remote.insert(key.clone(), user.clone()).is_none()
        } else {
            inner.remote.remove(&key).is_some()
        };
        if flipped && !inner.users.contains_key(&key) {
            self.announce(inner, user, online);
        }
    }

    /// Tells everyone here that `user` came online or went offline everywhere, except that
    /// with a bus an offline frame waits for [`OFFLINE_GRACE`] and a return within it
    /// cancels both frames.
    fn announce(&self, inner: &mut Inner, user: &Username, online: bool) {
        let key = user.key();
        if self.reports.is_none() {
            Self::deliver_all(&mut inner.users, &presence_frame(user, online));
        } else if online {
            if inner.leaving.remove(&key).is_none() {
                Self::deliver_all(&mut inner.users, &presence_frame(user, true));
            }
        } else {
            let due = std::time::Instant::now() + OFFLINE_GRACE;
            inner.leaving.insert(key, (user.clone(), due));
        }
    }

    /// Sends the offline frames whose grace has run out (the bus calls this a few times a
    /// second).
    pub fn flush_leaving(&self) {
        let now = std::time::Instant::now();
        let mut inner = self.lock();
        if inner.leaving.is_empty() {
            return;
        }
        let inner = &mut *inner;
        let due: Vec<String> = inner
            .leaving
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            if let Some((user, _)) = inner.leaving.remove(&key) {
                Self::deliver_all(&mut inner.users, &presence_frame(&user, false));
            }
        }
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

    /// Adds a connection for `user`. If it is the user's first, every other connection is
    /// told they are online. Register before reading history, so nothing committed after the
    /// read can be missed. Who is online is `GET /api/users/`'s answer, not the
    /// subscription's: a list per connection would cost every connect O(users) under this
    /// lock, and every idle socket a write buffer grown to its size.
    pub fn register(&self, user: &Username) -> Subscription {
        self.register_as(user, false)
    }

    /// Like [`register`](Self::register), for a connection that begins by catching up (a
    /// `?after=` replay): nothing is queued for it until [`catch_up`](Self::catch_up)'s last
    /// page, so no live frame (a presence change) can reach it out of order with the replay.
    pub fn register_catching_up(&self, user: &Username) -> Subscription {
        self.register_as(user, true)
    }

    fn register_as(&self, user: &Username, lagging: bool) -> Subscription {
        let id = ConnId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = mpsc::channel(self.queue_capacity);
        let lagged = Arc::new(Notify::new());
        let mut inner = self.lock();
        let live_after = inner.last_published;
        let key = user.key();
        if !inner.users.contains_key(&key) {
            self.report(user, true);
            if !inner.remote.contains_key(&key) {
                self.announce(&mut inner, user, true);
            }
        }
        let entry = inner.users.entry(key).or_insert_with(|| UserConns {
            username: user.clone(),
            conns: HashMap::new(),
        });
        entry.conns.insert(
            id,
            Peer {
                tx,
                lagged: Arc::clone(&lagged),
                lagging,
                missed_presence: HashMap::new(),
            },
        );
        inner.conns += 1;
        self.count(&inner);
        Subscription {
            id,
            rx,
            lagged,
            live_after,
        }
    }

    /// Removes a connection; if it was the user's last, everyone is told they are offline.
    pub fn unregister(&self, user: &Username, id: ConnId) {
        let mut inner = self.lock();
        let key = user.key();
        let Some(entry) = inner.users.get_mut(&key) else {
            return;
        };
        let removed = entry.conns.remove(&id).is_some();
        let last = entry.conns.is_empty();
        if removed {
            inner.conns -= 1;
        }
        if last {
            inner.users.remove(&key);
            self.report(user, false);
            if !inner.remote.contains_key(&key) {
                self.announce(&mut inner, user, false);
            }
        }
        self.count(&inner);
    }

    /// The next step of catching up for a connection that has sent everything it may see up
    /// to `cursor`: at most `limit` frames. The step that reaches the newest message ends
    /// the connection's lag in the same critical section, so the next message published is
    /// queued for it, and adds the presence changes it missed (the newest per user).
    pub fn catch_up(
        &self,
        user: &Username,
        id: ConnId,
        cursor: MessageId,
        limit: usize,
    ) -> CatchUp {
        let mut inner = self.lock();
        let key = user.key();
        let Some(found) = inner.recent.after(cursor, &key, limit) else {
            return CatchUp::Store {
                complete_after: inner.recent.complete_after(),
            };
        };
        let mut presence = Vec::new();
        if found.complete
            && let Some(peer) = inner.users.get_mut(&key).and_then(|u| u.conns.get_mut(&id))
        {
            peer.lagging = false;
            presence.extend(peer.missed_presence.drain().map(|(_, out)| out));
        }
        CatchUp::Recent {
            frames: found.frames,
            presence,
            through: found.through,
            caught_up: found.complete,
        }
    }

    /// Delivers committed messages, in the order given (the store's id order), to every
    /// connection allowed to see each one.
    pub fn publish(&self, messages: &[Message]) {
        // Encode before taking the lock: each message once, shared by every receiver.
        let frames: Vec<Outbound> = messages
            .iter()
            .map(|m| Outbound::Message {
                id: m.id,
                frame: WsMessage::text(ServerFrame::encode_chat_message(m)),
            })
            .collect();
        let mut inner = self.lock();
        let inner = &mut *inner;
        for (m, out) in messages.iter().zip(&frames) {
            inner.last_published = inner.last_published.max(m.id);
            let parties = match &m.receiver_username {
                None => {
                    Self::deliver_all(&mut inner.users, out);
                    None
                }
                Some(receiver) => {
                    let sender_key = m.sender_username.key();
                    let receiver_key = receiver.key();
                    for key in [&sender_key, &receiver_key] {
                        if let Some(u) = inner.users.get_mut(key) {
                            Self::deliver_user(u, out);
                        }
                        if sender_key == receiver_key {
                            break; // a note to self goes to each connection once
                        }
                    }
                    Some((sender_key, receiver_key))
                }
            };
            inner.recent.push(m.id, out.frame(), parties);
        }
    }

    fn deliver_all(users: &mut HashMap<String, UserConns>, out: &Outbound) {
        for u in users.values_mut() {
            Self::deliver_user(u, out);
        }
    }

    fn deliver_user(u: &mut UserConns, out: &Outbound) {
        for (id, peer) in &mut u.conns {
            if peer.lagging {
                peer.keep_missed(out);
                continue;
            }
            match peer.tx.try_send(out.clone()) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    tracing::debug!(conn_id = %id, user = %u.username, "outbound queue full; catching up from the store");
                    peer.lagging = true;
                    peer.keep_missed(out);
                    peer.lagged.notify_one();
                }
                // The task is ending and will unregister itself.
                Err(TrySendError::Closed(_)) => {}
            }
        }
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

impl Peer {
    /// A frame not queued while lagging: a message is in the store; a presence change is
    /// kept (the newest per user) for the last catch-up page.
    fn keep_missed(&mut self, out: &Outbound) {
        if let Outbound::Presence { user_key, .. } = out {
            self.missed_presence.insert(user_key.clone(), out.clone());
        }
    }
}

fn presence_frame(user: &Username, online: bool) -> Outbound {
    Outbound::Presence {
        user_key: user.key(),
        frame: WsMessage::text(
            ServerFrame::Presence {
                username: user.clone(),
                online,
            }
            .encode(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use natter_shared::Timestamp;

    fn name(s: &str) -> Username {
        Username::parse(s).unwrap()
    }

    fn msg(id: i64, from: &str, to: Option<&str>) -> Message {
        Message {
            id: MessageId(id),
            sender_username: name(from),
            receiver_username: to.map(name),
            text: "hi".into(),
            created_at: Timestamp::now(),
            client_id: None,
        }
    }

    /// What is queued: `Some(id)` for a message, `None` for a presence frame.
    fn drain(s: &mut Subscription) -> Vec<Option<MessageId>> {
        std::iter::from_fn(|| s.rx.try_recv().ok())
            .map(|o| match o {
                Outbound::Message { id, .. } => Some(id),
                Outbound::Presence { .. } => None,
            })
            .collect()
    }

    /// A direct message reaches both parties' connections and no one else's.
    #[test]
    fn direct_messages_reach_only_their_parties() {
        let hub = Hub::new(16, 1 << 20);
        let mut a1 = hub.register(&name("alice"));
        let mut a2 = hub.register(&name("Alice"));
        let mut b = hub.register(&name("bob"));
        let mut c = hub.register(&name("carol"));
        for s in [&mut a1, &mut a2, &mut b, &mut c] {
            drain(s);
        }
        hub.publish(&[msg(1, "alice", Some("BOB")), msg(2, "carol", None)]);
        let some = |ids: &[i64]| ids.iter().map(|i| Some(MessageId(*i))).collect::<Vec<_>>();
        assert_eq!(drain(&mut a1), some(&[1, 2]));
        assert_eq!(drain(&mut a2), some(&[1, 2]));
        assert_eq!(drain(&mut b), some(&[1, 2]));
        assert_eq!(drain(&mut c), some(&[2]));
    }

    /// A full queue marks the connection lagging and wakes it; it gets no message after the
    /// miss until it has caught up, and then gets the presence changes it missed, the newest
    /// per user, and live delivery again.
    #[test]
    fn full_queue_lags_until_caught_up() {
        let hub = Hub::new(2, 1 << 20);
        let mut slow = hub.register(&name("slow"));
        drain(&mut slow);
        hub.publish(&[msg(1, "x", None), msg(2, "x", None), msg(3, "x", None)]);
        assert_eq!(
            drain(&mut slow),
            vec![Some(MessageId(1)), Some(MessageId(2))]
        );
        // The miss woke the connection (a stored permit: this resolves at once).
        let woke = futures_util::FutureExt::now_or_never(slow.lagged.notified());
        assert!(woke.is_some(), "lagging connection was notified");
        hub.publish(&[msg(4, "x", None)]);
        let bob = hub.register(&name("bob"));
        hub.unregister(&name("bob"), bob.id);
        let carol = hub.register(&name("carol"));
        assert!(drain(&mut slow).is_empty(), "nothing queued while lagging");
        // Catching up from after 2: a first page, then the rest, which ends the lag and
        // brings the presence changes missed, the newest per user.
        let CatchUp::Recent {
            frames,
            through,
            caught_up,
            ..
        } = hub.catch_up(&name("slow"), slow.id, MessageId(2), 1)
        else {
            panic!("the recent frames reach back to 2");
        };
        assert_eq!((frames.len(), through, caught_up), (1, MessageId(3), false));
        let CatchUp::Recent {
            frames,
            presence,
            through,
            caught_up,
        } = hub.catch_up(&name("slow"), slow.id, through, 10)
        else {
            panic!("the recent frames reach back to 3");
        };
        assert!(caught_up);
        assert_eq!((frames.len(), through), (1, MessageId(4)));
        let mut missed: Vec<String> = presence
            .iter()
            .map(|o| o.frame().to_text().unwrap().to_owned())
            .collect();
        missed.sort();
        assert_eq!(missed.len(), 2, "one frame per user: {missed:?}");
        assert!(missed[0].contains("bob") && missed[0].contains("false"));
        assert!(missed[1].contains("carol") && missed[1].contains("true"));
        hub.publish(&[msg(5, "x", None)]);
        assert_eq!(drain(&mut slow), vec![Some(MessageId(5))]);
        let late = hub.register(&name("late"));
        assert_eq!(late.live_after, MessageId(5));
        drop(carol);
    }

    /// A connection registered to catch up (a replay) is queued nothing, not even presence,
    /// until its last catch-up page, which hands over the presence it missed separately from
    /// the messages (the connection sends it after `ready`).
    #[test]
    fn replaying_connection_is_queued_nothing_until_caught_up() {
        let hub = Hub::new(16, 1 << 20);
        let mut carol = hub.register_catching_up(&name("carol"));
        hub.publish(&[msg(1, "x", None)]);
        let bob = hub.register(&name("bob"));
        hub.publish(&[msg(2, "x", None)]);
        hub.unregister(&name("bob"), bob.id);
        assert!(
            drain(&mut carol).is_empty(),
            "nothing queued during the replay"
        );
        let CatchUp::Recent {
            frames,
            presence,
            caught_up,
            ..
        } = hub.catch_up(&name("carol"), carol.id, MessageId(0), 10)
        else {
            panic!("the recent frames reach back to 0");
        };
        assert!(caught_up);
        assert_eq!(frames.len(), 2);
        assert_eq!(presence.len(), 1, "bob's newest status only");
        assert!(presence[0].frame().to_text().unwrap().contains("false"));
        hub.publish(&[msg(3, "x", None)]);
        assert_eq!(drain(&mut carol), vec![Some(MessageId(3))], "live again");
    }

    /// With a bus, presence is the union over instances: frames only when it flips, and an
    /// offline frame waits out the grace, cancelled (both frames) by a return within it.
    #[test]
    fn cluster_presence_is_the_union_and_offline_waits_for_the_grace() {
        let (tx, mut reports) = tokio::sync::mpsc::unbounded_channel();
        let hub = Hub::new(16, 1 << 20).reporting_presence(Some(tx));
        let mut w = hub.register(&name("w"));
        drain(&mut w);
        hub.remote_presence(&name("bob"), true);
        assert_eq!(drain(&mut w).len(), 1, "bob online elsewhere");
        let b = hub.register(&name("bob"));
        assert!(drain(&mut w).is_empty(), "already online");
        assert!(hub.is_online(&name("bob")));
        hub.remote_presence(&name("bob"), false);
        hub.unregister(&name("bob"), b.id);
        hub.flush_leaving();
        assert!(drain(&mut w).is_empty(), "offline waits for the grace");
        // Back elsewhere within the grace: nothing was ever said.
        hub.remote_presence(&name("bob"), true);
        std::thread::sleep(OFFLINE_GRACE);
        hub.flush_leaving();
        assert!(drain(&mut w).is_empty());
        hub.remote_presence(&name("bob"), false);
        std::thread::sleep(OFFLINE_GRACE);
        hub.flush_leaving();
        assert_eq!(drain(&mut w).len(), 1, "offline once the grace ran out");
        let reported: Vec<(String, bool)> = std::iter::from_fn(|| reports.try_recv().ok())
            .map(|r| (r.user.key(), r.online))
            .collect();
        assert_eq!(
            reported,
            [
                ("w".into(), true),
                ("bob".into(), true),
                ("bob".into(), false)
            ],
            "the hub reports only this instance's own first and last connections"
        );
    }

    /// Presence is announced on the first connection and the last disconnection only.
    #[test]
    fn presence_on_first_and_last_connection() {
        let hub = Hub::new(16, 1 << 20);
        let mut watcher = hub.register(&name("w"));
        drain(&mut watcher);
        let a1 = hub.register(&name("a"));
        let a2 = hub.register(&name("a"));
        assert_eq!(drain(&mut watcher).len(), 1);
        hub.unregister(&name("a"), a1.id);
        assert!(drain(&mut watcher).is_empty());
        assert!(hub.is_online(&name("A")));
        hub.unregister(&name("a"), a2.id);
        assert_eq!(drain(&mut watcher).len(), 1);
        assert!(!hub.is_online(&name("a")));
    }
}
