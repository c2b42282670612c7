//! The lingering close: after the server's close frame, discard what the peer still sends
//! before the socket is dropped.
//!
//! Why: closing a TCP socket with unread bytes in its receive buffer makes the kernel answer
//! with a reset instead of a FIN (RFC 2525 section 2.17; Linux does so), and bytes arriving
//! after the close are reset too. The server refuses a frame over 1 MiB after reading only
//! its header, so the client is typically still writing the rest: without lingering, its
//! write failed with "connection reset by peer" (measured on loopback from 8 MiB up; at
//! 2 MiB the write fit in the socket buffers and the read after the 1009 got the reset), and
//! a client that stops at a failed write never reads the 1009. The same holds for a frame
//! refused with 1002 while more frames are queued behind it.
//!
//! Order: shut down our write side first, so the peer sees the close frame then EOF and a
//! client that waits for the server to close TCP first (RFC 6455 section 7.1.1) closes its
//! side at once; then read until EOF, [`LINGER_MAX_BYTES`] or [`LINGER_TIMEOUT`], so a
//! peer that keeps sending costs at most that.

use std::future::Future;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;

/// Longest the server keeps reading after its close frame.
pub const LINGER_TIMEOUT: Duration = Duration::from_secs(1);

/// Most bytes discarded after the close frame: the rest of an over-limit frame of a few
/// MiB. A peer sending more than this gets the reset.
pub const LINGER_MAX_BYTES: usize = 4 * 1024 * 1024;

/// Bytes read per call while discarding.
const LINGER_READ_BYTES: usize = 16 * 1024;

/// A socket the connection can close gracefully after sending its close frame. (A test
/// socket made of channels has nothing to drain: its `linger` can do nothing.)
pub trait Linger {
    /// Shuts down the write side, then reads and discards until EOF, an error,
    /// [`LINGER_MAX_BYTES`] or [`LINGER_TIMEOUT`].
    fn linger(&mut self) -> impl Future<Output = ()> + Send;
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Linger for WebSocketStream<T> {
    async fn linger(&mut self) {
        // Below tungstenite: after a protocol error, or in the middle of an over-limit
        // frame, what follows cannot be parsed as frames.
        let io = self.get_mut();
        let discard = async {
            let _ = io.shutdown().await;
            // On the heap, and only now: a buffer in the future itself would be part of
            // every connection's task for its whole life.
            let mut buf = vec![0u8; LINGER_READ_BYTES];
            let mut read = 0;
            while read < LINGER_MAX_BYTES {
                match io.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => read += n,
                }
            }
        };
        let _ = tokio::time::timeout(LINGER_TIMEOUT, discard).await;
    }
}
