//! The write connection and its prepared statements: every statement the writer runs,
//! prepared once per connection.

use tokio_postgres::{Client, Statement};

use super::unpublished::BETWEEN_SQL;

/// The write connection and its statements, prepared once when it connects: a statement
/// given as text costs a round trip to prepare it before every use, and all but the first
/// of a batch's statements run while it holds the counter row that other writers wait for.
pub(super) struct Conn {
    pub(super) client: Client,
    pub(super) st: Statements,
}

/// One prepared statement per kind of read or write a batch makes.
pub(super) struct Statements {
    pub(super) lock_counter: Statement,
    pub(super) read_counter: Statement,
    pub(super) set_counter: Statement,
    pub(super) between: Statement,
    pub(super) receivers: Statement,
    pub(super) earlier: Statement,
    pub(super) insert_messages: Statement,
    pub(super) insert_user: Statement,
    pub(super) insert_token: Statement,
    pub(super) remove_token: Statement,
}

impl Statements {
    pub(super) async fn prepare(c: &Client) -> Result<Statements, tokio_postgres::Error> {
        Ok(Statements {
            lock_counter: c
                .prepare("SELECT last_id FROM message_counter FOR UPDATE")
                .await?,
            read_counter: c.prepare("SELECT last_id FROM message_counter").await?,
            set_counter: c
                .prepare("UPDATE message_counter SET last_id = $1")
                .await?,
            between: c.prepare(BETWEEN_SQL).await?,
            receivers: c
                .prepare("SELECT id, username, username_key FROM users WHERE username_key = ANY($1)")
                .await?,
            earlier: c
                .prepare(
                    // One index probe per key, whatever the planner thinks of the table:
                    // LIMIT keeps the lateral subquery from being flattened into a join
                    // that may scan `messages` (seen: a backend busy with this query at
                    // 80 % of a core, growing with the table). The pair is unique anyway.
                    "SELECT m.id, s.username, r.username, m.text, m.created_at, m.client_id, m.sender_id \
                     FROM UNNEST($1::int8[], $2::text[]) AS k(sender_id, client_id) \
                     CROSS JOIN LATERAL (SELECT * FROM messages x \
                       WHERE x.sender_id = k.sender_id AND x.client_id = k.client_id LIMIT 1) m \
                     JOIN users s ON s.id = m.sender_id \
                     LEFT JOIN users r ON r.id = m.receiver_id",
                )
                .await?,
            insert_messages: c
                .prepare(
                    "INSERT INTO messages (id, sender_id, receiver_id, text, created_at, client_id) \
                     SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::int8[], $4::text[], \
                                          $5::int8[], $6::text[])",
                )
                .await?,
            insert_user: c
                .prepare(
                    "INSERT INTO users (username, username_key, password_hash, created_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (username_key) DO NOTHING RETURNING id",
                )
                .await?,
            insert_token: c
                .prepare("INSERT INTO tokens (token_hash, user_id, created_at) VALUES ($1, $2, $3)")
                .await?,
            remove_token: c
                .prepare("DELETE FROM tokens WHERE token_hash = $1")
                .await?,
        })
    }
}
