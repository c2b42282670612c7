//! What the store's callers hand it and get back: users, the outcome of each kind of
//! write, and the slice of history to read.

use natter_shared::{Message, MessageId, Username};

/// A user's row id. Never leaves the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserId(pub i64);

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Row id.
    pub id: UserId,
    /// Name as registered.
    pub username: Username,
}

/// A user with the password hash, for login.
#[derive(Debug, Clone)]
pub struct UserRecord {
    /// Who.
    pub user: User,
    /// argon2 PHC string.
    pub password_hash: String,
}

/// What happened to a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Stored now (and already handed to the [`CommitSink`]).
    Stored(Message),
    /// This sender used this client_id before: the earlier message, nothing new stored.
    Duplicate(Message),
    /// The receiver does not exist; nothing stored.
    UnknownReceiver(String),
}

/// What happened to a registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// Created, with its first token.
    Created(User),
    /// The name (ignoring case) exists.
    Taken,
}

/// Which slice of the visible history to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Only ids greater than this.
    pub after: Option<MessageId>,
    /// Only ids less than this.
    pub before: Option<MessageId>,
    /// At most this many; with no `after`, the newest ones.
    pub limit: usize,
}
