//! [`StoredMessage`]: a message's columns as both backends store them, and the one place
//! they become a `Message` again.

use natter_shared::{ClientId, Message, MessageId, Timestamp, Username};

/// A message's columns as both backends store them (the time as Unix milliseconds), read
/// back: [`StoredMessage::into_message`] is the one place they become a [`Message`] again.
pub(crate) struct StoredMessage {
    pub id: i64,
    pub sender: String,
    pub receiver: Option<String>,
    pub text: String,
    pub created_ms: i64,
    pub client_id: Option<String>,
}

impl StoredMessage {
    /// The message. Values were validated before they were stored, so one that no longer
    /// parses means a row edited by hand, which each backend reports as a bad row.
    pub fn into_message(self) -> Result<Message, natter_shared::ValidationError> {
        Ok(Message {
            id: MessageId(self.id),
            sender_username: Username::parse(&self.sender)?,
            receiver_username: self.receiver.as_deref().map(Username::parse).transpose()?,
            text: self.text,
            created_at: Timestamp::from_unix_millis(self.created_ms),
            client_id: self.client_id.as_deref().map(ClientId::parse).transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(sender: &str, client_id: Option<&str>) -> StoredMessage {
        StoredMessage {
            id: 7,
            sender: sender.to_owned(),
            receiver: Some("bob".to_owned()),
            text: "hi".to_owned(),
            created_ms: 1_700_000_000_000,
            client_id: client_id.map(str::to_owned),
        }
    }

    #[test]
    fn stored_rows_become_messages_or_bad_rows() {
        let m = row("alice", Some("c-1")).into_message().unwrap();
        assert_eq!(m.id, MessageId(7));
        assert_eq!(m.receiver_username.unwrap().as_str(), "bob");
        assert_eq!(m.created_at.unix_millis(), 1_700_000_000_000);
        // A row edited by hand is an error, never a panic or a message that breaks the rules.
        assert!(row("not a name!", None).into_message().is_err());
        assert!(row("alice", Some("")).into_message().is_err());
    }
}
