//! The registry of connections: a user's connections by id, added on connect and removed
//! on close; a user's first and last connection here is a presence change (`presence`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use natter_shared::Username;
use tokio::sync::{Notify, mpsc};

use super::queue::{Peer, Subscription};
use super::{ConnId, Hub};

pub(super) struct UserConns {
    pub(super) username: Username,
    pub(super) conns: HashMap<ConnId, Peer>,
}

impl Hub {
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
}
