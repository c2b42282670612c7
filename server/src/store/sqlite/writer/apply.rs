//! The SQL of each write, inside the batch's transaction: a message's one INSERT (with
//! its receiver looked up, through a cache, and a reused client_id found to be a
//! duplicate), and a registration or token change each in its own savepoint.

use std::collections::HashMap;

use natter_shared::protocol::SendMessage;
use natter_shared::{Message, MessageId, Timestamp, Username};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::Applied;
use crate::store::sqlite::message_from_row;
use crate::store::{RegisterOutcome, SendOutcome, StoreError, User, UserId, Write};

/// Receivers of direct messages already looked up: `username_key → (row id, stored name)`.
/// Users are never renamed or deleted, and only this thread adds them, so an entry stays
/// true once its transaction commits; the cache is cleared when a commit fails.
pub(super) type UserCache = HashMap<String, (i64, Username)>;

/// Entries the receiver cache may hold before it starts over (~100 bytes each).
const USER_CACHE_MAX: usize = 100_000;

/// Applies one write inside the batch's transaction, so that a failure undoes only that
/// write: a message is its one INSERT, which SQLite undoes by itself if it fails; the
/// other writes each run in their own savepoint ([`in_savepoint`]).
pub(super) fn apply_write(tx: &mut Transaction<'_>, w: Write, users: &mut UserCache) -> Applied {
    match w {
        Write::Message {
            sender,
            message,
            reply,
        } => Applied::Message(
            reply,
            // No savepoint: a message's only write is its one INSERT, and a failed statement
            // is undone by SQLite on its own, leaving the rest of the batch intact. Two fewer
            // statements per message (SAVEPOINT, RELEASE, each parsed anew) on the hot path.
            insert_message(tx, &sender, message, users).map_err(StoreError::from),
        ),
        Write::Register {
            username,
            password_hash,
            token_hash,
            reply,
        } => Applied::Register(
            reply,
            in_savepoint(tx, |t| {
                insert_user(t, username, &password_hash, &token_hash)
            }),
        ),
        Write::AddToken {
            user,
            token_hash,
            reply,
        } => Applied::Token(
            reply,
            in_savepoint(tx, |t| insert_token(t, user, &token_hash)),
        ),
        Write::RemoveToken { token_hash, reply } => Applied::Token(
            reply,
            in_savepoint(tx, |t| {
                t.prepare_cached("DELETE FROM tokens WHERE token_hash = ?1")?
                    .execute([&token_hash[..]])
                    .map(drop)
            }),
        ),
    }
}

fn in_savepoint<T>(
    tx: &mut Transaction<'_>,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> Result<T, StoreError> {
    let sp = tx.savepoint()?;
    match f(&sp) {
        Ok(v) => {
            sp.commit()?;
            Ok(v)
        }
        // Dropping the savepoint rolls it back.
        Err(e) => Err(e.into()),
    }
}

fn insert_message(
    c: &Connection,
    sender: &User,
    m: SendMessage,
    users: &mut UserCache,
) -> rusqlite::Result<SendOutcome> {
    let receiver = match &m.receiver_username {
        None => None,
        Some(name) => match receiver(c, name, users)? {
            Some(found) => Some(found),
            // A retry is a duplicate before anything else, as it always was.
            None => {
                return Ok(match earlier_message(c, sender, &m)? {
                    Some(earlier) => SendOutcome::Duplicate(earlier),
                    None => SendOutcome::UnknownReceiver(name.to_string()),
                });
            }
        },
    };
    let created_at = Timestamp::now();
    let inserted = c
        .prepare_cached(
            "INSERT INTO messages (sender_id, receiver_id, text, created_at, client_id) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            sender.id.0,
            receiver.as_ref().map(|r| r.0),
            m.text,
            created_at.unix_millis(),
            m.client_id.as_ref().map(|c| c.as_str()),
        ]);
    match inserted {
        Ok(_) => {}
        // The unique (sender, client_id) index refused it: this client_id was used before.
        // Asking only now saves a SELECT on every new message; SQLite has undone the failed
        // statement and the rest of the batch goes on.
        Err(rusqlite::Error::SqliteFailure(e, msg))
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                && m.client_id.is_some() =>
        {
            return match earlier_message(c, sender, &m)? {
                Some(earlier) => Ok(SendOutcome::Duplicate(earlier)),
                None => Err(rusqlite::Error::SqliteFailure(e, msg)),
            };
        }
        Err(e) => return Err(e),
    }
    Ok(SendOutcome::Stored(Message {
        id: MessageId(c.last_insert_rowid()),
        sender_username: sender.username.clone(),
        receiver_username: receiver.map(|r| r.1),
        text: m.text,
        created_at,
        client_id: m.client_id,
    }))
}

/// The message `sender` stored earlier with `m`'s client_id, if any.
fn earlier_message(
    c: &Connection,
    sender: &User,
    m: &SendMessage,
) -> rusqlite::Result<Option<Message>> {
    let Some(cid) = &m.client_id else {
        return Ok(None);
    };
    c.prepare_cached(
        "SELECT m.id, s.username, r.username, m.text, m.created_at, m.client_id \
         FROM messages m JOIN users s ON s.id = m.sender_id \
         LEFT JOIN users r ON r.id = m.receiver_id \
         WHERE m.sender_id = ?1 AND m.client_id = ?2",
    )?
    .query_row(params![sender.id.0, cid.as_str()], message_from_row)
    .optional()
}

/// The receiver's row id and stored spelling (not the one the sender typed), from the
/// cache or the users table.
fn receiver(
    c: &Connection,
    name: &Username,
    users: &mut UserCache,
) -> rusqlite::Result<Option<(i64, Username)>> {
    let key = name.key();
    if let Some(found) = users.get(&key) {
        return Ok(Some(found.clone()));
    }
    let found = c
        .prepare_cached("SELECT id, username FROM users WHERE username_key = ?1")?
        .query_row([&key], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })
        .optional()?;
    if users.len() >= USER_CACHE_MAX {
        users.clear();
    }
    Ok(found.map(|(id, stored)| {
        let user = (id, Username::parse(&stored).unwrap_or(name.clone()));
        users.insert(key, user.clone());
        user
    }))
}

pub(super) fn insert_user(
    c: &Connection,
    username: Username,
    password_hash: &str,
    token_hash: &[u8; 32],
) -> rusqlite::Result<RegisterOutcome> {
    let taken = c
        .prepare_cached("SELECT 1 FROM users WHERE username_key = ?1")?
        .exists([username.key()])?;
    if taken {
        return Ok(RegisterOutcome::Taken);
    }
    let now = Timestamp::now().unix_millis();
    c.prepare_cached(
        "INSERT INTO users (username, username_key, password_hash, created_at) \
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        username.as_str(),
        username.key(),
        password_hash,
        now
    ])?;
    let id = UserId(c.last_insert_rowid());
    insert_token(c, id, token_hash)?;
    Ok(RegisterOutcome::Created(User { id, username }))
}

fn insert_token(c: &Connection, user: UserId, token_hash: &[u8; 32]) -> rusqlite::Result<()> {
    c.prepare_cached("INSERT INTO tokens (token_hash, user_id, created_at) VALUES (?1, ?2, ?3)")?
        .execute(params![
            &token_hash[..],
            user.0,
            Timestamp::now().unix_millis()
        ])?;
    Ok(())
}
