//! The messages the chat screen holds: confirmed messages in id order, deduplicated by id,
//! followed by this identity's pending (unconfirmed) sends in the order typed.
//!
//! Confirmed messages live in one sorted `Vec`: they nearly always arrive in id order, so an
//! insert is a push, and a binary search both deduplicates and places a late one. 100,000
//! messages cost a few megabytes and no per-frame work (see `measure::items`).

use natter_shared::{ClientId, Message, MessageId, Username};

use crate::outbox::Outgoing;

/// A send not yet confirmed by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Who sends it.
    pub sender: Username,
    /// The message.
    pub outgoing: Outgoing,
    /// Whether it is on disk in the outbox: shown queued only then. A send just typed is
    /// not yet (the outbox keeper says when it is).
    pub saved: bool,
    /// Set when the server refused it for good: the reason.
    pub failed: Option<String>,
}

/// One row source of the message list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item<'a> {
    /// A stored message.
    Message(&'a Message),
    /// A pending or refused send.
    Pending(&'a Pending),
}

/// What [`Timeline::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// Placed at this index.
    At(usize),
    /// Already there (same id): nothing changed.
    Duplicate,
}

/// Confirmed messages plus pending sends.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    messages: Vec<Message>,
    pending: Vec<Pending>,
}

impl Timeline {
    /// Items in all: messages, then pending sends.
    pub fn len(&self) -> usize {
        self.messages.len() + self.pending.len()
    }

    /// Whether there is nothing to show.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The item at `index`.
    pub fn get(&self, index: usize) -> Option<Item<'_>> {
        match self.messages.get(index) {
            Some(m) => Some(Item::Message(m)),
            None => self
                .pending
                .get(index - self.messages.len())
                .map(Item::Pending),
        }
    }

    /// The confirmed messages, in id order.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// The pending sends, in the order typed.
    pub fn pending(&self) -> &[Pending] {
        &self.pending
    }

    /// The newest confirmed id.
    pub fn last_id(&self) -> Option<MessageId> {
        self.messages.last().map(|m| m.id)
    }

    /// Adds a stored message in id order, unless its id is already there. A pending send
    /// with the same sender and client_id is confirmed by it and leaves the pending list.
    pub fn insert(&mut self, message: Message) -> Inserted {
        if let Some(cid) = &message.client_id {
            self.pending.retain(|p| {
                !(&p.outgoing.client_id == cid && p.sender.key() == message.sender_username.key())
            });
        }
        let at = match self.messages.last() {
            Some(last) if last.id < message.id => self.messages.len(),
            None => 0,
            Some(_) => match self.messages.binary_search_by_key(&message.id, |m| m.id) {
                Ok(_) => return Inserted::Duplicate,
                Err(at) => at,
            },
        };
        self.messages.insert(at, message);
        Inserted::At(at)
    }

    /// Adds a send just typed at the end (not on disk yet), unless its client_id is already
    /// pending.
    pub fn add_pending(&mut self, sender: Username, outgoing: Outgoing) {
        if !self
            .pending
            .iter()
            .any(|p| p.outgoing.client_id == outgoing.client_id)
        {
            self.pending.push(Pending {
                sender,
                outgoing,
                saved: false,
                failed: None,
            });
        }
    }

    /// A send is on disk, waiting ([`crate::msg::NetEvent::Queued`]): one shown already is
    /// marked so, where it is; another goes just after the pending send `after` (first when
    /// `None`, or when `after` is pending no longer), so the outbox's order is kept.
    pub fn queue(&mut self, sender: Username, outgoing: Outgoing, after: Option<&ClientId>) {
        if let Some(p) = self
            .pending
            .iter_mut()
            .find(|p| p.outgoing.client_id == outgoing.client_id)
        {
            p.saved = true;
            return;
        }
        let at = after
            .and_then(|a| self.pending.iter().position(|p| &p.outgoing.client_id == a))
            .map_or(0, |i| i + 1);
        self.pending.insert(
            at,
            Pending {
                sender,
                outgoing,
                saved: true,
                failed: None,
            },
        );
    }

    /// Marks a pending send as refused for good.
    pub fn reject(&mut self, client_id: &ClientId, reason: &str) {
        for p in &mut self.pending {
            if &p.outgoing.client_id == client_id {
                p.failed = Some(reason.to_owned());
            }
        }
    }

    /// How many sends still wait for confirmation (refused ones excluded).
    pub fn waiting(&self) -> usize {
        self.pending.iter().filter(|p| p.failed.is_none()).count()
    }

    /// How many of those are on disk (the top bar's `N queued`).
    pub fn queued(&self) -> usize {
        self.pending
            .iter()
            .filter(|p| p.saved && p.failed.is_none())
            .count()
    }

    /// Forgets everything (a change of identity).
    pub fn clear(&mut self) {
        self.messages.clear();
        self.pending.clear();
    }
}
