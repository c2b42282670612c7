//! Fan-out targeting: who receives each committed message — everyone for a public one,
//! the sender's and receiver's connections for a direct one.

use natter_shared::{Message, ServerFrame};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::Hub;
use super::queue::Outbound;

impl Hub {
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
}
