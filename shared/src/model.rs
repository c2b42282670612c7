//! The stored chat message and the small newtypes that travel inside it.
//!
//! Newtypes keep ids and names from being mixed up across modules; each serializes as the
//! bare value, so the JSON shape is the seed app's.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::ValidationError;
use crate::validate;

/// A message's id: assigned by the server, strictly increasing in commit order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(pub i64);

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A valid username (1–32 of `A–Z a–z 0–9 _ . -`). Equality is exact; use
/// [`Username::key`] where names must compare case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    /// Checks `name` against the username rules.
    pub fn parse(name: &str) -> Result<Self, ValidationError> {
        validate::validate_username(name)?;
        Ok(Username(name.to_owned()))
    }

    /// The name as typed at registration.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form that uniqueness and lookups use. Usernames are ASCII, so
    /// ASCII lowercasing is the whole story.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl std::fmt::Display for Username {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Username {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Username::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A client-chosen idempotency key (1–64 characters). The same sender sending the same
/// `client_id` twice gets the first message back and nothing new is stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ClientId(String);

impl ClientId {
    /// Checks `id` against the client-id rules.
    pub fn parse(id: &str) -> Result<Self, ValidationError> {
        validate::validate_client_id(id)?;
        Ok(ClientId(id.to_owned()))
    }

    /// The id as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ClientId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ClientId::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A UTC instant with millisecond precision, written as RFC 3339 with a `Z`
/// (`2026-11-24T09:42:20.123Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// The current time, truncated to milliseconds so that what is stored is what is sent.
    pub fn now() -> Self {
        Self::from_unix_millis(Utc::now().timestamp_millis())
    }

    /// From milliseconds since the Unix epoch (how the server stores it).
    pub fn from_unix_millis(ms: i64) -> Self {
        Timestamp(Utc.timestamp_millis_opt(ms).single().unwrap_or_default())
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_millis(&self) -> i64 {
        self.0.timestamp_millis()
    }

    /// The instant as a chrono value, for formatting in local time.
    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| Timestamp(t.with_timezone(&Utc)))
            .map_err(serde::de::Error::custom)
    }
}

/// A stored chat message, exactly as it appears in REST responses and `chat_message` frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Server-assigned, increasing.
    pub id: MessageId,
    /// Who sent it (the token's user, never a claimed name).
    pub sender_username: Username,
    /// `None` for a group message, else the one other party of a direct message.
    pub receiver_username: Option<Username>,
    /// The text, 1–4,000 characters, not only whitespace.
    pub text: String,
    /// When the server stored it.
    pub created_at: Timestamp,
    /// The sender's idempotency key, if it gave one.
    pub client_id: Option<ClientId>,
}

impl Message {
    /// Whether `user` may see this message: everyone sees group messages, only the two
    /// parties see a direct one.
    pub fn is_visible_to(&self, user: &Username) -> bool {
        match &self.receiver_username {
            None => true,
            Some(receiver) => {
                let key = user.key();
                receiver.key() == key || self.sender_username.key() == key
            }
        }
    }

    /// Whether this is a direct message.
    pub fn is_direct(&self) -> bool {
        self.receiver_username.is_some()
    }
}
