//! Presence: the union of this instance's users and the other instances' (from the bus),
//! frames only when it flips, the offline grace with a bus, and this instance's first and
//! last connections reported back to the bus.

use natter_shared::{ServerFrame, Username};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::queue::Outbound;
use super::{Hub, Inner, OFFLINE_GRACE};

impl Hub {
    /// Called under the lock, so reports leave in the order the changes happened.
    pub(super) fn report(&self, user: &Username, online: bool) {
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
    pub(super) fn announce(&self, inner: &mut Inner, user: &Username, online: bool) {
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
