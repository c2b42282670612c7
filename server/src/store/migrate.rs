//! `natter-server migrate`: copies a SQLite database into an empty PostgreSQL one — users
//! with their password hashes, tokens, and messages with their ids, timestamps and
//! client_ids — so a team that started on the default keeps its history when it moves.
//!
//! The SQLite side reads one snapshot, holding the file's lock (a server running on it is
//! refused, as a second server would be). The PostgreSQL side is one
//! transaction holding the message counter row, so no server can write there meanwhile, and
//! a failed copy leaves the target as empty as it was. The SQL of each side stays in its
//! backend (`sqlite::export`, `postgres::import`); this module only moves rows across.

use std::path::Path;

use super::{PgTarget, StoreError, postgres, sqlite};

/// Messages read and inserted per round.
const CHUNK: usize = 5_000;

/// One `users` row.
pub(super) struct UserRow {
    pub(super) id: i64,
    pub(super) username: String,
    pub(super) username_key: String,
    pub(super) password_hash: String,
    pub(super) created_at: i64,
}

/// One `tokens` row.
pub(super) struct TokenRow {
    pub(super) token_hash: Vec<u8>,
    pub(super) user_id: i64,
    pub(super) created_at: i64,
}

/// One `messages` row.
pub(super) struct MessageRow {
    pub(super) id: i64,
    pub(super) sender_id: i64,
    pub(super) receiver_id: Option<i64>,
    pub(super) text: String,
    pub(super) created_at: i64,
    pub(super) client_id: Option<String>,
}

/// How many rows were copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    /// Accounts.
    pub users: usize,
    /// Login tokens (hashes).
    pub tokens: usize,
    /// Messages.
    pub messages: usize,
}

/// Copies the natter database at `from` into the PostgreSQL database `to`, which must hold no
/// natter data (its tables are created if missing). Blocking: for the `migrate` subcommand.
pub fn sqlite_to_postgres(from: &Path, to: &PgTarget) -> Result<Copied, StoreError> {
    let source = sqlite::export::Source::open(from)?;
    let shown = to.to_string();
    let config = to.config().clone();
    let shown_in = shown.clone();
    postgres::on_own_runtime(&shown, || async move {
        let shown = shown_in;
        let mut client = postgres::import::connect(&config, &shown).await?;
        let tx = client.transaction().await?;
        postgres::import::begin(&tx, &shown).await?;
        let users = source.users()?;
        postgres::import::users(&tx, &users).await?;
        let tokens = source.tokens()?;
        postgres::import::tokens(&tx, &tokens).await?;
        let mut messages = 0;
        let mut after = 0;
        // Ends: each round moves `after` past at least one id, or there are none left.
        loop {
            let chunk = source.messages_after(after, CHUNK)?;
            let Some(last) = chunk.last() else { break };
            after = last.id;
            messages += chunk.len();
            postgres::import::messages(&tx, &chunk).await?;
        }
        postgres::import::commit(tx, after).await?;
        Ok(Copied {
            users: users.len(),
            tokens: tokens.len(),
            messages,
        })
    })?
}
