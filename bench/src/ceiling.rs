//! The ceiling: the least a WebSocket broadcast server on this stack can do.
//!
//! tokio + tokio-tungstenite with small read buffers (4 KiB, as natter), tungstenite's
//! default write buffering (frames are written when 128 KiB have gathered or at a flush),
//! a bounded queue per connection and batched writes, and nothing else: no
//! parsing, no storage, no auth. Each text frame is re-sent verbatim to every connection in
//! the sender's room. Rooms come from the path, `/rooms/A,B,C`: a connection receives what
//! is sent to any of its rooms and sends to the first one (`/` is the room `all`). That is
//! enough to mirror natter's routing: everyone in `all` for group messages, a room per pair
//! for direct messages, a room per sender that one sink also joins for durable ingress.
//!
//! After registering a connection it sends `{"type":"ready"}`, as natter does, so a client
//! knows its frames will be routed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};

/// Same as natter's read buffer: chat frames are small, and a big buffer is most of an
/// idle connection's memory.
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// Queued frames written before one flush (natter's value).
const WRITE_BATCH: usize = 256;

struct Peer {
    id: u64,
    tx: mpsc::Sender<Message>,
    slow: Arc<Slow>,
}

/// Set when a connection's queue overflowed: it gets nothing more and its task closes it
/// with 1013, as natter does.
#[derive(Default)]
struct Slow {
    flag: AtomicBool,
    notify: Notify,
}

#[derive(Default)]
struct Rooms {
    // A std mutex, as in natter's hub: held for one loop of `try_send`, never across an await.
    members: Mutex<HashMap<String, Vec<Peer>>>,
    next_id: AtomicU64,
}

impl Rooms {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Peer>>> {
        self.members.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `frame` to everyone in `room`.
    fn broadcast(&self, room: &str, frame: &Message) {
        let members = self.lock();
        for p in members.get(room).map(Vec::as_slice).unwrap_or_default() {
            if p.slow.flag.load(Ordering::Relaxed) {
                continue;
            }
            if let Err(mpsc::error::TrySendError::Full(_)) = p.tx.try_send(frame.clone()) {
                p.slow.flag.store(true, Ordering::Relaxed);
                p.slow.notify.notify_one();
            }
        }
    }

    fn leave(&self, rooms: &[String], id: u64) {
        let mut members = self.lock();
        for r in rooms {
            if let Some(v) = members.get_mut(r) {
                v.retain(|p| p.id != id);
                if v.is_empty() {
                    members.remove(r);
                }
            }
        }
    }
}

/// The rooms a request path names.
pub fn rooms_of(path: &str) -> Vec<String> {
    let list = path
        .trim_start_matches('/')
        .strip_prefix("rooms/")
        .unwrap_or("");
    let rooms: Vec<String> = list
        .split(',')
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect();
    if rooms.is_empty() {
        vec!["all".to_owned()]
    } else {
        rooms
    }
}

/// Serves on `listener` forever; a connection with `queue_capacity` frames queued is closed
/// as too slow (natter's default is 1024).
pub async fn serve(listener: TcpListener, queue_capacity: usize) -> anyhow::Result<()> {
    let rooms = Arc::new(Rooms::default());
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(a) => a,
            Err(_) => {
                // Out of file descriptors, usually: back off instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(connection(tcp, Arc::clone(&rooms), queue_capacity.max(1)));
    }
}

#[allow(clippy::result_large_err)] // tungstenite's callback signature, not ours
async fn connection(tcp: TcpStream, rooms: Arc<Rooms>, queue_capacity: usize) {
    let mut path = String::new();
    let callback = |req: &Request, resp: Response| {
        path = req.uri().path().to_owned();
        Ok(resp)
    };
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
    let Ok(ws) = tokio_tungstenite::accept_hdr_async_with_config(tcp, callback, Some(config)).await
    else {
        return;
    };
    let my_rooms = rooms_of(&path);
    let id = rooms.next_id.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel(queue_capacity);
    let slow = Arc::new(Slow::default());
    {
        let mut members = rooms.lock();
        for r in &my_rooms {
            members.entry(r.clone()).or_default().push(Peer {
                id,
                tx: tx.clone(),
                slow: Arc::clone(&slow),
            });
        }
    }
    drop(tx);
    let (mut sink, mut stream) = ws.split();
    let send_room = my_rooms[0].clone();
    let ready = sink.send(Message::text(r#"{"type":"ready"}"#)).await;
    let mut too_slow = false;
    if ready.is_ok() {
        loop {
            tokio::select! {
                () = slow.notify.notified() => {
                    too_slow = true;
                    break;
                }
                queued = rx.recv() => {
                    let Some(first) = queued else { break };
                    if sink.feed(first).await.is_err() {
                        break;
                    }
                    let mut n = 1;
                    while n < WRITE_BATCH {
                        let Ok(m) = rx.try_recv() else { break };
                        if sink.feed(m).await.is_err() {
                            break;
                        }
                        n += 1;
                    }
                    if sink.flush().await.is_err() {
                        break;
                    }
                }
                frame = stream.next() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        rooms.broadcast(&send_room, &Message::Text(text));
                    }
                    Some(Ok(Message::Ping(_))) => {
                        if sink.flush().await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
            }
        }
    }
    rooms.leave(&my_rooms, id);
    if too_slow {
        let close = CloseFrame {
            code: CloseCode::Again,
            reason: "too slow".into(),
        };
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(1),
            sink.send(Message::Close(Some(close))),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Paths name rooms; anything else is the room everyone shares.
    #[test]
    fn rooms_from_paths() {
        assert_eq!(rooms_of("/"), vec!["all"]);
        assert_eq!(rooms_of("/ws/chat/"), vec!["all"]);
        assert_eq!(rooms_of("/rooms/p3"), vec!["p3"]);
        assert_eq!(rooms_of("/rooms/s0,s1,"), vec!["s0", "s1"]);
    }
}
