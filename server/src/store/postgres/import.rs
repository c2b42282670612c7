//! Writing a copied database in, for `migrate`: one transaction that holds the message
//! counter row (so no server writes meanwhile) and refuses a database with natter data.

use tokio_postgres::{Client, Transaction};

use crate::store::StoreError;
use crate::store::migrate::{MessageRow, TokenRow, UserRow};

/// A connection to the target, its schema created or migrated.
pub(in crate::store) async fn connect(
    config: &tokio_postgres::Config,
    shown: &str,
) -> Result<Client, StoreError> {
    let mut client = super::connect(config)
        .await
        .map_err(|e| StoreError::Connect {
            target: shown.to_owned(),
            reason: super::reason(&e),
        })?;
    super::schema::migrate(&mut client)
        .await
        .map_err(|r| r.into_error(shown.to_owned()))?;
    Ok(client)
}

/// Takes the counter row in `tx` and refuses a database that has users or messages.
pub(in crate::store) async fn begin(tx: &Transaction<'_>, shown: &str) -> Result<(), StoreError> {
    tx.execute("SELECT last_id FROM message_counter FOR UPDATE", &[])
        .await?;
    let row = tx
        .query_one(
            "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM messages)",
            &[],
        )
        .await?;
    let (users, messages): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    if users > 0 || messages > 0 {
        return Err(StoreError::Connect {
            target: shown.to_owned(),
            reason: format!(
                "it is not empty ({users} users, {messages} messages); migrate into a new database"
            ),
        });
    }
    Ok(())
}

pub(in crate::store) async fn users(
    tx: &Transaction<'_>,
    rows: &[UserRow],
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO users (id, username, username_key, password_hash, created_at) \
         SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::int8[])",
        &[
            &rows.iter().map(|r| r.id).collect::<Vec<_>>(),
            &rows.iter().map(|r| r.username.as_str()).collect::<Vec<_>>(),
            &rows
                .iter()
                .map(|r| r.username_key.as_str())
                .collect::<Vec<_>>(),
            &rows
                .iter()
                .map(|r| r.password_hash.as_str())
                .collect::<Vec<_>>(),
            &rows.iter().map(|r| r.created_at).collect::<Vec<_>>(),
        ],
    )
    .await?;
    Ok(())
}

pub(in crate::store) async fn tokens(
    tx: &Transaction<'_>,
    rows: &[TokenRow],
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO tokens (token_hash, user_id, created_at) \
         SELECT * FROM UNNEST($1::bytea[], $2::int8[], $3::int8[])",
        &[
            &rows
                .iter()
                .map(|r| r.token_hash.as_slice())
                .collect::<Vec<_>>(),
            &rows.iter().map(|r| r.user_id).collect::<Vec<_>>(),
            &rows.iter().map(|r| r.created_at).collect::<Vec<_>>(),
        ],
    )
    .await?;
    Ok(())
}

pub(in crate::store) async fn messages(
    tx: &Transaction<'_>,
    rows: &[MessageRow],
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO messages (id, sender_id, receiver_id, text, created_at, client_id) \
         SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::int8[], $4::text[], \
                              $5::int8[], $6::text[])",
        &[
            &rows.iter().map(|r| r.id).collect::<Vec<_>>(),
            &rows.iter().map(|r| r.sender_id).collect::<Vec<_>>(),
            &rows.iter().map(|r| r.receiver_id).collect::<Vec<_>>(),
            &rows.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(),
            &rows.iter().map(|r| r.created_at).collect::<Vec<_>>(),
            &rows
                .iter()
                .map(|r| r.client_id.as_deref())
                .collect::<Vec<_>>(),
        ],
    )
    .await?;
    Ok(())
}

/// Moves the counter to `last_message_id` and the users' identity past the copied ids, then
/// commits.
pub(in crate::store) async fn commit(
    tx: Transaction<'_>,
    last_message_id: i64,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE message_counter SET last_id = $1",
        &[&last_message_id],
    )
    .await?;
    // The next registration gets an id above every copied one.
    tx.execute(
        "SELECT setval(pg_get_serial_sequence('users', 'id'), \
                       COALESCE((SELECT max(id) FROM users), 0) + 1, false)",
        &[],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
