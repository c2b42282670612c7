//! The seam between storage and fan-out: [`CommitSink`], which every writer hands each
//! committed batch to (and asks what was delivered), and [`OnCommit`], the writers' handle
//! on it. The bus's feed implements it; the store never learns what is behind it.

use std::sync::Arc;

use natter_shared::{Message, MessageId};

/// Where committed messages go: what the writers tell fan-out, and ask of it. Called on the
/// writer (a thread or a task), so no method may block.
pub trait CommitSink: Send + Sync + 'static {
    /// The newest message in the store when it opened, before the writer starts: delivery
    /// begins after it.
    fn stored_up_to(&self, id: MessageId);
    /// The newest id already delivered to this instance's connections. A PostgreSQL writer
    /// that finds the counter past it reads the messages in between and hands them to
    /// [`found`](Self::found) first.
    fn delivered(&self) -> MessageId;
    /// Messages committed earlier, in id order, found only now: by another instance on the
    /// same database, or by one of this writer's batches whose COMMIT answer was lost.
    fn found(&self, messages: &[Message]);
    /// A batch's new messages, in id order, just committed by this writer, before its senders
    /// are answered.
    fn committed(&self, messages: &[Message]);
}

/// The writers' handle on the sink.
pub type OnCommit = Arc<dyn CommitSink>;
