//! The sending half of one WebSocket connection: every write through it has a deadline,
//! and its cursor keeps each message to once.
//!
//! The deadline (`write_timeout`) is re-armed at each batch and after each
//! [`PROGRESS_BYTES`] the socket accepts, so a peer that takes less than that in a whole
//! `write_timeout` (about 2 KiB/s at the default 30 s; in practice one that stopped
//! reading) fails the write ([`WriteError::TimedOut`]; the connection closes it with 1008
//! and frees its slot, queue and presence), while a slow but moving reader does not. One timer per
//! connection, reset rather than made anew per frame: a frame's write is on fan-out's hot
//! path.

use std::pin::Pin;
use std::time::Duration;

use futures_util::{Sink, SinkExt};
use natter_shared::{Message, MessageId, ServerFrame};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};

use crate::hub::Outbound;

/// Bytes a socket must accept to count as progress that re-arms the write deadline.
const PROGRESS_BYTES: usize = 64 * 1024;

/// Why a write failed.
pub(super) enum WriteError {
    /// The socket is gone.
    Closed,
    /// It accepted no data for the write timeout.
    TimedOut,
}

/// The sending half, with its deadline and the cursor that keeps messages once each.
pub(super) struct Outgoing<'a, K> {
    sink: &'a mut K,
    /// Every message this connection may see with an id at or below this has been sent, or
    /// predates the connection and was not asked for.
    pub(super) cursor: MessageId,
    /// The newest message actually sent (the cursor also moves past messages this
    /// connection may not see).
    pub(super) last_sent: Option<MessageId>,
    write_timeout: Duration,
    /// Fires when the writes since it was last armed have waited `write_timeout`.
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// Bytes handed over since the deadline was last armed.
    since_armed: usize,
    /// Messages and bytes written since the last flush, added to the metrics at the flush
    /// (one atomic add per batch instead of two per frame).
    unflushed: (u64, u64),
    deliveries: metrics::Counter,
    sent_bytes: metrics::Counter,
}

impl<'a, K> Outgoing<'a, K>
where
    K: Sink<WsMessage, Error = WsError> + Unpin,
{
    /// The sending half of `sink`, which has sent everything up to `cursor`.
    pub(super) fn new(
        sink: &'a mut K,
        cursor: MessageId,
        write_timeout: Duration,
        metrics: &crate::metrics::Metrics,
    ) -> Self {
        Outgoing {
            sink,
            cursor,
            last_sent: None,
            write_timeout,
            deadline: Box::pin(tokio::time::sleep(write_timeout)),
            since_armed: 0,
            unflushed: (0, 0),
            deliveries: metrics.deliveries.clone(),
            sent_bytes: metrics.sent_bytes.clone(),
        }
    }

    /// Starts the deadline for a batch of writes.
    pub(super) fn arm(&mut self) {
        self.deadline
            .as_mut()
            .reset(Instant::now() + self.write_timeout);
        self.since_armed = 0;
    }

    /// Hands a frame to the socket's buffer (tungstenite writes it out once the buffer is
    /// over 16 KiB, so a completed feed means the socket took earlier bytes).
    pub(super) async fn feed(&mut self, frame: WsMessage) -> Result<(), WriteError> {
        let len = frame.len();
        self.with_deadline(|sink| sink.feed(frame)).await?;
        self.since_armed += len;
        self.unflushed.1 += len as u64;
        if self.since_armed >= PROGRESS_BYTES {
            self.arm();
        }
        Ok(())
    }

    pub(super) async fn flush(&mut self) -> Result<(), WriteError> {
        self.with_deadline(|sink| sink.flush()).await?;
        let (messages, bytes) = std::mem::take(&mut self.unflushed);
        if messages > 0 {
            self.deliveries.increment(messages);
        }
        self.sent_bytes.increment(bytes);
        Ok(())
    }

    /// One frame on its own (a ping, a reply): armed, fed and flushed.
    pub(super) async fn send(&mut self, frame: WsMessage) -> Result<(), WriteError> {
        self.arm();
        self.feed(frame).await?;
        self.flush().await
    }

    async fn with_deadline<'s, F>(
        &'s mut self,
        op: impl FnOnce(&'s mut K) -> F,
    ) -> Result<(), WriteError>
    where
        F: Future<Output = Result<(), WsError>> + 's,
    {
        let Outgoing { sink, deadline, .. } = self;
        tokio::select! {
            biased;
            r = op(sink) => r.map_err(|_| WriteError::Closed),
            () = deadline.as_mut() => Err(WriteError::TimedOut),
        }
    }

    /// A frame from the hub's queue, unless it is a message already sent.
    pub(super) async fn feed_queued(&mut self, out: Outbound) -> Result<(), WriteError> {
        match out {
            Outbound::Message { id, frame } => {
                if id <= self.cursor {
                    return Ok(());
                }
                self.cursor = id;
                self.last_sent = Some(id);
                self.unflushed.0 += 1;
                self.feed(frame).await
            }
            Outbound::Presence { frame, .. } => self.feed(frame).await,
        }
    }

    /// A message read from the store.
    pub(super) async fn feed_stored(&mut self, m: &Message) -> Result<(), WriteError> {
        if m.id <= self.cursor {
            return Ok(());
        }
        self.cursor = m.id;
        self.last_sent = Some(m.id);
        self.unflushed.0 += 1;
        self.feed(WsMessage::text(ServerFrame::encode_chat_message(m)))
            .await
    }
}
