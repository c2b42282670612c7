//! Per-connection queues: what is queued ([`Outbound`]), the receiving end a connection
//! holds ([`Subscription`]), `try_send` into each queue, and the lag a full one starts and
//! [`Hub::catch_up`] ends (see the hub's module doc for why a miss stops all queueing).

use std::collections::HashMap;
use std::sync::Arc;

use natter_shared::{MessageId, Username};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::registry::UserConns;
use super::{ConnId, Hub};

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

pub(super) struct Peer {
    pub(super) tx: mpsc::Sender<Outbound>,
    pub(super) lagged: Arc<Notify>,
    /// Set by the hub when the queue overflowed, cleared by [`Hub::catch_up`]'s last page.
    pub(super) lagging: bool,
    /// While lagging: the newest presence frame per user, handed over with the last catch-up page.
    pub(super) missed_presence: HashMap<String, Outbound>,
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

impl Hub {
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

    pub(super) fn deliver_all(users: &mut HashMap<String, UserConns>, out: &Outbound) {
        for u in users.values_mut() {
            Self::deliver_user(u, out);
        }
    }

    pub(super) fn deliver_user(u: &mut UserConns, out: &Outbound) {
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
