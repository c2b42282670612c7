//! The [`Feed`]: the one owner of "delivered up to". Every committed message reaches the
//! hub through it, once, in id order — this instance's own commits (as the store's
//! [`CommitSink`]) and the other instances' (offered by the Redis subscriber, with a
//! [`Gap`] when ids before them are missing).

use std::sync::{Arc, Mutex};

use natter_shared::{Message, MessageId};

use super::{Bus, Outgoing};
use crate::hub::Hub;
use crate::store::CommitSink;

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
