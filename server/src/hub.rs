//! The hub: who is connected, and who receives what.
//!
//! `Username key → {ConnId → Peer}`, behind a std mutex that is never held across an await
//! (publishing is a loop of `try_send`, called from the store's writer thread). Each message
//! is serialized once; every receiving connection gets a clone of the same bytes.
//!
//! Queues are bounded. A connection whose queue is full is marked overflowed and receives
//! nothing more: its task closes it with 1013 and the client resumes with `?after=` from the
//! last message it got. Skipping one message but delivering a later one would make that
//! resume skip the gap, so after the first miss, nothing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use natter_shared::{Message, MessageId, ServerFrame, Username};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;

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
pub struct Outbound {
    /// The chat message's id, so a resuming connection can skip what it replayed.
    pub id: Option<MessageId>,
    /// The encoded frame; cloning shares the bytes.
    pub frame: WsMessage,
}

/// What a connection holds after registering.
pub struct Subscription {
    /// This connection's id.
    pub id: ConnId,
    /// Frames to send, in order.
    pub rx: mpsc::Receiver<Outbound>,
    /// Cancelled when the queue overflowed: close the connection.
    pub overflowed: CancellationToken,
}

struct Peer {
    tx: mpsc::Sender<Outbound>,
    overflowed: CancellationToken,
}

struct UserConns {
    username: Username,
    conns: HashMap<ConnId, Peer>,
}

/// Connected users and their queues.
pub struct Hub {
    users: Mutex<HashMap<String, UserConns>>,
    next_id: AtomicU64,
    queue_capacity: usize,
}

impl Hub {
    /// A hub whose per-connection queues hold `queue_capacity` frames.
    pub fn new(queue_capacity: usize) -> Self {
        Hub {
            users: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            queue_capacity: queue_capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, UserConns>> {
        // A panic while holding this lock leaves the map consistent (every update is a
        // single insert or remove), so a poisoned lock is still usable.
        self.users.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a connection for `user`. If it is the user's first, every other connection is
    /// told they are online. Register before reading history, so nothing committed after the
    /// read can be missed. Who is online is `GET /api/users/`'s answer, not the
    /// subscription's: a list per connection would cost every connect O(users) under this
    /// lock, and every idle socket a write buffer grown to its size.
    pub fn register(&self, user: &Username) -> Subscription {
        let id = ConnId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = mpsc::channel(self.queue_capacity);
        let overflowed = CancellationToken::new();
        let mut users = self.lock();
        let entry = users.entry(user.key()).or_insert_with(|| UserConns {
            username: user.clone(),
            conns: HashMap::new(),
        });
        if entry.conns.is_empty() {
            Self::deliver_all(&users, &presence_frame(user, true));
        }
        if let Some(entry) = users.get_mut(&user.key()) {
            entry.conns.insert(
                id,
                Peer {
                    tx,
                    overflowed: overflowed.clone(),
                },
            );
        }
        Subscription { id, rx, overflowed }
    }

    /// Removes a connection; if it was the user's last, everyone is told they are offline.
    pub fn unregister(&self, user: &Username, id: ConnId) {
        let mut users = self.lock();
        let key = user.key();
        let Some(entry) = users.get_mut(&key) else {
            return;
        };
        entry.conns.remove(&id);
        if entry.conns.is_empty() {
            users.remove(&key);
            Self::deliver_all(&users, &presence_frame(user, false));
        }
    }

    /// Delivers committed messages, in the order given (the store's id order), to every
    /// connection allowed to see each one.
    pub fn publish(&self, messages: &[Message]) {
        // Encode before taking the lock: each message once, shared by every receiver.
        let frames: Vec<Outbound> = messages
            .iter()
            .map(|m| Outbound {
                id: Some(m.id),
                frame: WsMessage::text(ServerFrame::encode_chat_message(m)),
            })
            .collect();
        let users = self.lock();
        for (m, out) in messages.iter().zip(&frames) {
            match &m.receiver_username {
                None => Self::deliver_all(&users, out),
                Some(receiver) => {
                    let sender_key = m.sender_username.key();
                    let receiver_key = receiver.key();
                    for key in [&sender_key, &receiver_key] {
                        if let Some(u) = users.get(key) {
                            Self::deliver_user(u, out);
                        }
                        if sender_key == receiver_key {
                            break; // a note to self goes to each connection once
                        }
                    }
                }
            }
        }
    }

    fn deliver_all(users: &HashMap<String, UserConns>, out: &Outbound) {
        for u in users.values() {
            Self::deliver_user(u, out);
        }
    }

    fn deliver_user(u: &UserConns, out: &Outbound) {
        for (id, peer) in &u.conns {
            if peer.overflowed.is_cancelled() {
                continue;
            }
            match peer.tx.try_send(out.clone()) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    tracing::warn!(conn_id = %id, user = %u.username, "outbound queue full; closing slow connection");
                    peer.overflowed.cancel();
                }
                // The task is ending and will unregister itself.
                Err(TrySendError::Closed(_)) => {}
            }
        }
    }

    /// Whether `user` has at least one connection.
    pub fn is_online(&self, user: &Username) -> bool {
        self.lock().contains_key(&user.key())
    }

    /// Open connections, all users together.
    pub fn connection_count(&self) -> usize {
        self.lock().values().map(|u| u.conns.len()).sum()
    }
}

fn presence_frame(user: &Username, online: bool) -> Outbound {
    Outbound {
        id: None,
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

    fn drain(s: &mut Subscription) -> Vec<Option<MessageId>> {
        std::iter::from_fn(|| s.rx.try_recv().ok())
            .map(|o| o.id)
            .collect()
    }

    /// A direct message reaches both parties' connections and no one else's.
    #[test]
    fn direct_messages_reach_only_their_parties() {
        let hub = Hub::new(16);
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

    /// A full queue marks the connection overflowed and it gets nothing after the miss.
    #[test]
    fn full_queue_overflows_and_stops_delivery() {
        let hub = Hub::new(2);
        let mut slow = hub.register(&name("slow"));
        drain(&mut slow);
        hub.publish(&[msg(1, "x", None), msg(2, "x", None), msg(3, "x", None)]);
        assert!(slow.overflowed.is_cancelled());
        assert_eq!(
            drain(&mut slow),
            vec![Some(MessageId(1)), Some(MessageId(2))]
        );
        hub.publish(&[msg(4, "x", None)]);
        assert!(drain(&mut slow).is_empty());
    }

    /// Presence is announced on the first connection and the last disconnection only.
    #[test]
    fn presence_on_first_and_last_connection() {
        let hub = Hub::new(16);
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
