//! What was committed but never published: the messages past the newest id the sink has
//! delivered (see the writer's module doc: a lost COMMIT reply, or another instance's
//! commits), read by id range. The store's `messages_between` read uses the same query.

use natter_shared::Message;

use super::statements::Conn;
use crate::store::StoreError;
use crate::store::postgres::message_from_row;

/// Messages with ids in `($1, $2]`, in id order (for [`messages_between`]).
pub(in crate::store::postgres) const BETWEEN_SQL: &str = "SELECT m.id, s.username, r.username, m.text, m.created_at, m.client_id \
     FROM messages m JOIN users s ON s.id = m.sender_id \
     LEFT JOIN users r ON r.id = m.receiver_id \
     WHERE m.id > $1 AND m.id <= $2 ORDER BY m.id";

/// The messages committed past `published`, in id order, read without the row lock: the
/// counter and the rows it counts commit together, so what it says is there is there.
pub(super) async fn unpublished(conn: &Conn, delivered: i64) -> Result<Vec<Message>, StoreError> {
    let last: i64 = conn
        .client
        .query_one(&conn.st.read_counter, &[])
        .await?
        .try_get(0)?;
    if last <= delivered {
        return Ok(Vec::new());
    }
    messages_between(&conn.client, &conn.st.between, delivered, last).await
}

/// The messages with ids in `(after, through]`, in id order.
pub(in crate::store::postgres) async fn messages_between<S>(
    client: &impl tokio_postgres::GenericClient,
    statement: &S,
    after: i64,
    through: i64,
) -> Result<Vec<Message>, StoreError>
where
    S: tokio_postgres::ToStatement + Sync + Send + ?Sized,
{
    let rows = client.query(statement, &[&after, &through]).await?;
    rows.iter().map(message_from_row).collect()
}
