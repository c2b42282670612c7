//! One batch's transaction: the SQL of each write — accounts and tokens, then the
//! messages numbered from the locked counter row, looked up for duplicates and unknown
//! receivers, and inserted in one statement — and the commit.

use std::collections::HashMap;

use natter_shared::{Message, MessageId, Timestamp, Username};

use super::Done;
use super::statements::{Conn, Statements};
use super::unpublished::messages_between;
use crate::store::postgres::message_from_row;
use crate::store::{CommitSink, RegisterOutcome, SendOutcome, StoreError, User, UserId, Write};

/// Receivers of direct messages already looked up: `username_key → (row id, stored name)`.
/// Users are never renamed or deleted, so an entry stays true once its transaction commits;
/// the cache is cleared when a batch fails.
pub(super) type UserCache = HashMap<String, (i64, Username)>;

/// Entries the receiver cache may hold before it starts over (~100 bytes each).
const USER_CACHE_MAX: usize = 100_000;

/// The columns of the batch's new messages, for one `INSERT … SELECT FROM UNNEST`.
#[derive(Default)]
struct NewRows {
    ids: Vec<i64>,
    senders: Vec<i64>,
    receivers: Vec<Option<i64>>,
    texts: Vec<String>,
    created: Vec<i64>,
    client_ids: Vec<Option<String>>,
}

/// Applies `batch` in one transaction and commits it; each write's outcome, by position,
/// and the messages committed before it that were never published (ids past `published`
/// below the batch's own; see the module documentation).
pub(super) async fn apply(
    conn: &mut Conn,
    batch: &[Write],
    users: &mut UserCache,
    sink: &dyn CommitSink,
) -> Result<(Vec<Option<Done>>, Vec<Message>), StoreError> {
    let mut missed = Vec::new();
    let st = &conn.st;
    let tx = conn.client.transaction().await?;
    let mut done: Vec<Option<Done>> = batch.iter().map(|_| None).collect();
    // Accounts first, then messages: all of them are answered after the one commit, so
    // either order is one the callers could have seen.
    for (i, w) in batch.iter().enumerate() {
        done[i] = match w {
            Write::Message { .. } => continue,
            Write::Register {
                username,
                password_hash,
                token_hash,
                ..
            } => Some(Done::Register(Ok(insert_user(
                &tx,
                st,
                username,
                password_hash,
                token_hash,
            )
            .await?))),
            Write::AddToken {
                user, token_hash, ..
            } => {
                insert_token(&tx, st, *user, token_hash).await?;
                Some(Done::Token(Ok(())))
            }
            Write::RemoveToken { token_hash, .. } => {
                tx.execute(&st.remove_token, &[&&token_hash[..]]).await?;
                Some(Done::Token(Ok(())))
            }
        };
    }
    let messages: Vec<(usize, &User, &natter_shared::protocol::SendMessage)> = batch
        .iter()
        .enumerate()
        .filter_map(|(i, w)| match w {
            Write::Message {
                sender, message, ..
            } => Some((i, sender, message)),
            _ => None,
        })
        .collect();
    if !messages.is_empty() {
        let mut last: i64 = tx.query_one(&st.lock_counter, &[]).await?.try_get(0)?;
        let delivered = sink.delivered().0;
        if last > delivered {
            // Under the row lock every id up to `last` is committed and visible.
            missed = messages_between(&tx, &st.between, delivered, last).await?;
        }
        look_up_receivers(&tx, st, &messages, users).await?;
        let earlier = earlier_messages(&tx, st, &messages).await?;
        let mut in_batch: HashMap<(i64, String), Message> = HashMap::new();
        let mut rows = NewRows::default();
        for (i, sender, m) in messages {
            let key = m
                .client_id
                .as_ref()
                .map(|c| (sender.id.0, c.as_str().to_owned()));
            // A retry is a duplicate before anything else, as on SQLite.
            if let Some(k) = &key
                && let Some(first) = earlier.get(k).or_else(|| in_batch.get(k))
            {
                done[i] = Some(Done::Message(Ok(SendOutcome::Duplicate(first.clone()))));
                continue;
            }
            let receiver = match &m.receiver_username {
                None => None,
                Some(name) => match users.get(&name.key()) {
                    Some(found) => Some(found.clone()),
                    None => {
                        done[i] = Some(Done::Message(Ok(SendOutcome::UnknownReceiver(
                            name.to_string(),
                        ))));
                        continue;
                    }
                },
            };
            last += 1;
            let message = Message {
                id: MessageId(last),
                sender_username: sender.username.clone(),
                receiver_username: receiver.as_ref().map(|r| r.1.clone()),
                text: m.text.clone(),
                created_at: Timestamp::now(),
                client_id: m.client_id.clone(),
            };
            rows.ids.push(last);
            rows.senders.push(sender.id.0);
            rows.receivers.push(receiver.map(|r| r.0));
            rows.texts.push(message.text.clone());
            rows.created.push(message.created_at.unix_millis());
            rows.client_ids
                .push(message.client_id.as_ref().map(|c| c.as_str().to_owned()));
            if let Some(k) = key {
                in_batch.insert(k, message.clone());
            }
            done[i] = Some(Done::Message(Ok(SendOutcome::Stored(message))));
        }
        if !rows.ids.is_empty() {
            tx.execute(
                &st.insert_messages,
                &[
                    &rows.ids,
                    &rows.senders,
                    &rows.receivers,
                    &rows.texts,
                    &rows.created,
                    &rows.client_ids,
                ],
            )
            .await?;
            tx.execute(&st.set_counter, &[&last]).await?;
        }
    }
    tx.commit().await?;
    Ok((done, missed))
}

/// Puts every receiver the batch names that is not cached yet into the cache, with one
/// query; names that are not there stay out (unknown receivers).
async fn look_up_receivers(
    tx: &tokio_postgres::Transaction<'_>,
    st: &Statements,
    messages: &[(usize, &User, &natter_shared::protocol::SendMessage)],
    users: &mut UserCache,
) -> Result<(), StoreError> {
    let mut wanted: Vec<String> = messages
        .iter()
        .filter_map(|(_, _, m)| m.receiver_username.as_ref().map(Username::key))
        .filter(|k| !users.contains_key(k))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    wanted.sort_unstable();
    wanted.dedup();
    if users.len() + wanted.len() > USER_CACHE_MAX {
        users.clear();
    }
    let rows = tx.query(&st.receivers, &[&wanted]).await?;
    for r in rows {
        let stored: String = r.try_get(1)?;
        let Ok(name) = Username::parse(&stored) else {
            continue;
        };
        users.insert(r.try_get(2)?, (r.try_get(0)?, name));
    }
    Ok(())
}

/// The messages stored earlier under the batch's (sender, client_id) pairs, with one query.
async fn earlier_messages(
    tx: &tokio_postgres::Transaction<'_>,
    st: &Statements,
    messages: &[(usize, &User, &natter_shared::protocol::SendMessage)],
) -> Result<HashMap<(i64, String), Message>, StoreError> {
    let (senders, client_ids): (Vec<i64>, Vec<String>) = messages
        .iter()
        .filter_map(|(_, s, m)| {
            m.client_id
                .as_ref()
                .map(|c| (s.id.0, c.as_str().to_owned()))
        })
        .unzip();
    let mut found = HashMap::new();
    if senders.is_empty() {
        return Ok(found);
    }
    let rows = tx.query(&st.earlier, &[&senders, &client_ids]).await?;
    for r in rows {
        let message = message_from_row(&r)?;
        let sender: i64 = r.try_get(6)?;
        if let Some(cid) = &message.client_id {
            found.insert((sender, cid.as_str().to_owned()), message);
        }
    }
    Ok(found)
}

async fn insert_user(
    tx: &tokio_postgres::Transaction<'_>,
    st: &Statements,
    username: &Username,
    password_hash: &str,
    token_hash: &[u8; 32],
) -> Result<RegisterOutcome, StoreError> {
    let now = Timestamp::now().unix_millis();
    // ON CONFLICT: a taken name is an outcome, not an error that would abort the batch (and
    // another writer inserting the same name concurrently is waited for, then seen).
    let row = tx
        .query_opt(
            &st.insert_user,
            &[&username.as_str(), &username.key(), &password_hash, &now],
        )
        .await?;
    let Some(row) = row else {
        return Ok(RegisterOutcome::Taken);
    };
    let id = UserId(row.try_get(0)?);
    insert_token(tx, st, id, token_hash).await?;
    Ok(RegisterOutcome::Created(User {
        id,
        username: username.clone(),
    }))
}

async fn insert_token(
    tx: &tokio_postgres::Transaction<'_>,
    st: &Statements,
    user: UserId,
    token_hash: &[u8; 32],
) -> Result<(), StoreError> {
    tx.execute(
        &st.insert_token,
        &[&&token_hash[..], &user.0, &Timestamp::now().unix_millis()],
    )
    .await?;
    Ok(())
}
