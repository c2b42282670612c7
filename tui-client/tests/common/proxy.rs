//! A TCP proxy in front of the real server that forwards plain HTTP but answers every
//! WebSocket upgrade with 503: "the socket is refused but HTTP works", as some corporate
//! proxies do; until [`Proxy::allow_sockets`], after which it forwards them too. Stops when
//! dropped.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // test helpers: a panic is the failure report

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct Proxy {
    pub addr: String,
    refusing: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let refusing = Arc::new(AtomicBool::new(true));
        let refuse = refusing.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let refuse = refuse.load(Ordering::SeqCst);
                tokio::spawn(serve(client, upstream.clone(), refuse));
            }
        });
        Proxy {
            addr,
            refusing,
            task,
        }
    }

    /// From now on, WebSocket upgrades are forwarded like the rest.
    pub fn allow_sockets(&self) {
        self.refusing.store(false, Ordering::SeqCst);
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut client: TcpStream, upstream: String, refuse_upgrades: bool) {
    // Read the request head (bounded), decide, then either refuse or splice.
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    if refuse_upgrades && text.contains("upgrade: websocket") {
        let _ = client
            .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await;
        return;
    }
    let Ok(mut server) = TcpStream::connect(&upstream).await else {
        return;
    };
    if server.write_all(&head).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}
