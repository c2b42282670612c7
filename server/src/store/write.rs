//! The write queue's items: one [`Write`] per call to a write method of `Store`, sent to
//! whichever writer the store has, each with the oneshot its caller waits on for the
//! outcome after the commit.

use natter_shared::Username;
use natter_shared::protocol::SendMessage;
use tokio::sync::oneshot;

use super::{RegisterOutcome, SendOutcome, StoreError, User, UserId};

/// Where a write's caller waits for its outcome.
pub(super) type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// One queued write, for whichever writer the store has.
pub(crate) enum Write {
    Message {
        sender: User,
        message: SendMessage,
        reply: Reply<SendOutcome>,
    },
    Register {
        username: Username,
        password_hash: String,
        token_hash: [u8; 32],
        reply: Reply<RegisterOutcome>,
    },
    AddToken {
        user: UserId,
        token_hash: [u8; 32],
        reply: Reply<()>,
    },
    RemoveToken {
        token_hash: [u8; 32],
        reply: Reply<()>,
    },
}

impl Write {
    /// Answers this write's caller with `e` (a caller that stopped waiting is no error).
    pub(super) fn fail(self, e: StoreError) {
        match self {
            Write::Message { reply, .. } => drop(reply.send(Err(e))),
            Write::Register { reply, .. } => drop(reply.send(Err(e))),
            Write::AddToken { reply, .. } | Write::RemoveToken { reply, .. } => {
                drop(reply.send(Err(e)))
            }
        }
    }
}
