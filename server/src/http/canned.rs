//! Gives hyper's own error replies natter's JSON error body.
//!
//! When a request cannot be parsed (a bad request line or header, or headers over the
//! limit), hyper answers by itself before our service ever runs, with an empty body:
//! `Server::on_error` in hyper's `proto/h1/role.rs` turns the parse error into a bare
//! `MessageHead` (400, or 431 for `Parse::TooLarge`, which also covers more than 100
//! headers), and `Conn::on_parse_error` (`proto/h1/conn.rs`) writes it with no body, which
//! `encode_headers` renders as `HTTP/1.1 400 Bad Request\r\nconnection: close\r\n
//! content-length: 0\r\ndate: …\r\n\r\n`. It only does so while nothing else has been
//! written for the request (`Writing::Init`). hyper offers no hook to change that reply,
//! so [`CannedErrors`] wraps the socket below hyper and swaps the head for a complete JSON
//! reply as it is written.
//!
//! Recognising it is unambiguous: it is the connection's first write, the whole head in one
//! buffer (hyper encodes a head into one buffer and hands it over in one write), status
//! 400 or 431, with `content-length: 0`, and our handlers never send a 400 or 431 without
//! a JSON body. After the first write the wrapper passes everything through untouched, so
//! it costs one branch per read or write on every other connection, WebSockets included
//! (they upgrade through this same socket). A malformed request that follows a good one on
//! a keep-alive connection keeps hyper's empty body: finding its head would mean scanning
//! every write.
//!
//! Other canned replies (414 for a URI over 64 KiB) are left as hyper writes them: there is
//! no wire code for them.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use natter_shared::{ErrorBody, ErrorCode, ErrorResponse};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A socket whose first write, if it is hyper's canned 400 or 431, becomes a JSON reply.
pub struct CannedErrors<T> {
    inner: T,
    state: State,
}

enum State {
    /// Nothing written yet: the next write is the first response head.
    First,
    /// Writing `reply` in hyper's place; once all of it is out, hyper is told its `head_len`
    /// bytes were written, so it carries on (flush, close) as if nothing changed.
    Replacing {
        reply: Vec<u8>,
        written: usize,
        head_len: usize,
    },
    /// Everything from here on goes straight to the socket.
    PassThrough,
}

impl<T> CannedErrors<T> {
    /// Wraps a freshly accepted socket.
    pub fn new(inner: T) -> Self {
        CannedErrors {
            inner,
            state: State::First,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for CannedErrors<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CannedErrors<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::PassThrough => return Pin::new(&mut this.inner).poll_write(cx, buf),
                State::First => this.state = after_first_write(buf),
                State::Replacing {
                    reply,
                    written,
                    head_len,
                } => {
                    // hyper calls again with the same head after a `Pending`; its bytes are
                    // ignored and ours continue where they stopped.
                    while *written < reply.len() {
                        let n =
                            ready!(Pin::new(&mut this.inner).poll_write(cx, &reply[*written..]))?;
                        if n == 0 {
                            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                        }
                        *written += n;
                    }
                    let n = *head_len;
                    this.state = State::PassThrough;
                    return Poll::Ready(Ok(n));
                }
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let head = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &**b);
        if let State::First = this.state {
            this.state = after_first_write(head);
        }
        match this.state {
            // All buffers at once: a head and its body in one write (one segment).
            State::PassThrough => Pin::new(&mut this.inner).poll_write_vectored(cx, bufs),
            // hyper's canned head is one buffer with nothing after it.
            _ => Pin::new(this).poll_write(cx, head),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The state once the connection's first write, `head`, has been seen.
fn after_first_write(head: &[u8]) -> State {
    match json_reply(head) {
        Some(reply) => State::Replacing {
            reply,
            written: 0,
            head_len: head.len(),
        },
        None => State::PassThrough,
    }
}

/// The JSON reply to send instead of `head`, if `head` is hyper's canned 400 or 431.
fn json_reply(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let header_block = text.strip_suffix("\r\n\r\n")?;
    let mut lines = header_block.split("\r\n");
    let status_line = lines.next()?;
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))?;
    let error = match status.split(' ').next()? {
        "400" => ErrorBody::new(
            ErrorCode::BadRequest,
            "malformed HTTP request: the request line or a header could not be parsed",
        ),
        "431" => ErrorBody::new(
            ErrorCode::HeadersTooLarge,
            "request headers are too large or too many; send fewer or smaller headers",
        ),
        _ => return None,
    };
    let mut is_empty = false;
    let mut kept = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':')?;
        if name.eq_ignore_ascii_case("content-length") {
            is_empty = value.trim() == "0";
        } else if !name.eq_ignore_ascii_case("connection") {
            kept.push(line);
        }
    }
    if !is_empty {
        return None;
    }
    // Plain strings: serializing cannot fail.
    let body = serde_json::to_vec(&ErrorResponse { error }).unwrap_or_default();
    let mut reply = format!(
        "{status_line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n",
        body.len()
    );
    for line in kept {
        reply.push_str(line);
        reply.push_str("\r\n");
    }
    reply.push_str("\r\n");
    let mut reply = reply.into_bytes();
    reply.extend_from_slice(&body);
    Some(reply)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::io::{AsyncWrite, AsyncWriteExt};

    use super::{CannedErrors, json_reply};

    /// Records each write call's buffers.
    #[derive(Default)]
    struct Calls(Vec<Vec<Vec<u8>>>);

    impl AsyncWrite for Calls {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().0.push(vec![buf.to_vec()]);
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_write_vectored(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let call: Vec<Vec<u8>> = bufs.iter().map(|b| b.to_vec()).collect();
            let n = call.iter().map(Vec::len).sum();
            self.get_mut().0.push(call);
            Poll::Ready(Ok(n))
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// An ordinary first response (head and body as two buffers) reaches the socket in one
    /// vectored write, so it can leave in one segment; a client reading the head once (as
    /// tungstenite does for a refused upgrade) sees the body too.
    #[tokio::test]
    async fn first_vectored_write_passes_whole() {
        let mut io = CannedErrors::new(Calls::default());
        let head = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\n\r\n";
        let bufs = [io::IoSlice::new(head), io::IoSlice::new(b"{}")];
        let n = io.write_vectored(&bufs).await.unwrap();
        assert_eq!(n, head.len() + 2);
        assert_eq!(io.inner.0, vec![vec![head.to_vec(), b"{}".to_vec()]]);
    }

    /// The canned head, written vectored, is replaced and reported as written in full.
    #[tokio::test]
    async fn canned_head_written_vectored_is_replaced() {
        let mut io = CannedErrors::new(Calls::default());
        let head = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n\
                     content-length: 0\r\n\r\n";
        let n = io.write_vectored(&[io::IoSlice::new(head)]).await.unwrap();
        assert_eq!(n, head.len());
        let written: Vec<u8> = io.inner.0.concat().concat();
        let text = String::from_utf8(written).unwrap();
        assert!(text.ends_with(r#""code":"headers_too_large","message":"request headers are too large or too many; send fewer or smaller headers"}}"#), "{text}");
    }

    /// hyper's canned 400, byte for byte, becomes a JSON reply that keeps its date.
    #[test]
    fn canned_400_is_replaced() {
        let head = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\
                     date: Tue, 01 Dec 2026 20:47:07 GMT\r\n\r\n";
        let reply = String::from_utf8(json_reply(head).unwrap()).unwrap();
        let (head, body) = reply.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        assert!(
            head.contains("\r\ndate: Tue, 01 Dec 2026 20:47:07 GMT"),
            "{head}"
        );
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        assert_eq!(head.matches("connection:").count(), 1, "{head}");
        assert!(body.contains(r#""code":"bad_request""#), "{body}");
    }

    /// Any head with a body, or another status, is not hyper's canned reply.
    #[test]
    fn other_heads_pass() {
        let with_body = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 10\r\n\r\n";
        assert!(json_reply(with_body).is_none());
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert!(json_reply(ok).is_none());
        let joined = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{}";
        assert!(json_reply(joined).is_none());
        assert!(json_reply(b"\x81\x05hello").is_none());
    }
}
