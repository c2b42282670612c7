//! One connection's reader: scans every text frame for a [`Marker`], records it into the
//! connection's [`Tally`], and says how the connection ended.
//!
//! How it ended is the point of [`End`]: a close frame or an EOF from the server while we
//! still read is a *cut* (the server dropped us: the ceiling's 1013 for a full queue,
//! natter's 1008 for a socket that accepted nothing for `--write-timeout`, a crash), counted
//! apart from errors so a run can require "nobody cut" by itself. The reader stops only when
//! the socket ends or its task is aborted at [`crate::load::Session::close`], so our own
//! close is never counted.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::load::Accept;
use crate::marker::{Marker, now_us};
use crate::stats::Tally;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What a connection's reader and its sender share.
pub(crate) struct Shared {
    pub(crate) tally: Mutex<Tally>,
    /// Free slots of a window-paced sender; the echo of each message adds one.
    pub(crate) window: Semaphore,
    pub(crate) ready: Notify,
    /// False once the reader has stopped, for whatever reason.
    pub(crate) alive: AtomicBool,
    /// True once the server closed the connection (see [`End::Cut`]).
    pub(crate) cut: AtomicBool,
}

impl Shared {
    pub(crate) fn new() -> Shared {
        Shared {
            tally: Mutex::new(Tally::default()),
            window: Semaphore::new(0),
            ready: Notify::new(),
            alive: AtomicBool::new(true),
            cut: AtomicBool::new(false),
        }
    }

    pub(crate) fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Who this reader is.
pub(crate) struct ReaderCtx {
    pub(crate) me: u32,
    pub(crate) accept: Accept,
}

/// How a connection's stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The server closed it: a close frame, or the TCP stream ended or was reset.
    Cut,
    /// Anything else went wrong reading (a protocol violation, a frame too large).
    Failed,
}

impl End {
    /// What a stream item that ends the reading means. tokio-tungstenite turns the end
    /// after a close handshake into `None` (handled by the caller); an EOF without one is
    /// `ResetWithoutClosingHandshake`, a reset socket an I/O error.
    pub(crate) fn of_error(e: &WsError) -> End {
        use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
        match e {
            WsError::ConnectionClosed
            | WsError::AlreadyClosed
            | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => End::Cut,
            WsError::Io(io)
                if matches!(
                    io.kind(),
                    ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
                ) =>
            {
                End::Cut
            }
            _ => End::Failed,
        }
    }
}

/// Reads until the socket ends (or the task is aborted at session close).
pub(crate) async fn read_loop(
    mut stream: SplitStream<Ws>,
    shared: Arc<Shared>,
    phase: Arc<AtomicU32>,
    ctx: ReaderCtx,
) {
    let end = loop {
        let item = match stream.next().await {
            None | Some(Ok(Message::Close(_))) => break End::Cut,
            Some(Err(e)) => break End::of_error(&e),
            Some(Ok(item)) => item,
        };
        let Message::Text(text) = item else {
            continue;
        };
        let text = text.as_str();
        if let Some(m) = Marker::find(text) {
            let current = phase.load(Ordering::Relaxed);
            if current == 0 || m.phase != current {
                continue;
            }
            let latency = now_us().saturating_sub(m.sent_us);
            let is_ack = m.sender == ctx.me;
            {
                let mut t = shared.tally();
                t.record(latency, is_ack);
                if !ctx.accept.allows(ctx.me, &m) {
                    t.misdelivered += 1;
                }
            }
            if is_ack {
                shared.window.add_permits(1);
            }
        } else if text.contains(r#""type":"ready""#) {
            shared.ready.notify_one();
        } else if text.contains(r#""type":"error""#) {
            shared.tally().errors += 1;
            // The refused message will never be acknowledged: free its slot.
            shared.window.add_permits(1);
        }
    };
    match end {
        End::Cut => {
            shared.tally().closed_by_server += 1;
            shared.cut.store(true, Ordering::Relaxed);
        }
        End::Failed => shared.tally().errors += 1,
    }
    shared.alive.store(false, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An EOF without a close frame and a reset socket are cuts; a protocol violation is not.
    #[test]
    fn which_errors_are_cuts() {
        let reset = WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake);
        assert_eq!(End::of_error(&reset), End::Cut);
        let io = WsError::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(End::of_error(&io), End::Cut);
        assert_eq!(End::of_error(&WsError::ConnectionClosed), End::Cut);
        let bad = WsError::Protocol(ProtocolError::NonZeroReservedBits);
        assert_eq!(End::of_error(&bad), End::Failed);
        assert_eq!(End::of_error(&WsError::Utf8("bad".into())), End::Failed);
    }
}
