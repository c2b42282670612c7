//! One load connection: which deliveries it may receive ([`Accept`]), how it is opened
//! ([`ConnSpec`]), and opening it with its reader task.

use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::WsSink;
use crate::marker::{Marker, TO_EVERYONE};
use crate::reader::{ReaderCtx, Shared, read_loop};

/// One connection's open + `ready` must finish within this.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Connections being opened at once.
pub(super) const CONNECT_CONCURRENCY: usize = 64;

/// Which deliveries a connection may legitimately receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// Everything (group messages; the ingress sink).
    Any,
    /// Its own messages and those its partner sends to it.
    Partner(u32),
    /// Only its own messages coming back.
    OwnOnly,
}

impl Accept {
    /// Whether connection `me` should have received `m`.
    pub fn allows(self, me: u32, m: &Marker) -> bool {
        match self {
            Accept::Any => true,
            Accept::Partner(p) => m.sender == me || (m.sender == p && m.to == me),
            Accept::OwnOnly => m.sender == me,
        }
    }
}

/// How to open one connection and what it sends.
#[derive(Debug, Clone)]
pub struct ConnSpec {
    /// This connection's index, as stamped in the markers it sends.
    pub index: u32,
    /// `ws://127.0.0.1:PORT/...`.
    pub url: String,
    /// Bearer token (natter) or none (ceiling).
    pub token: Option<String>,
    /// Which deliveries are not misdeliveries.
    pub accept: Accept,
    /// When it sends: the connection index it addresses ([`TO_EVERYONE`] for a group
    /// message) and the `receiver_username` JSON value (`null` or `"name"`).
    pub to: (u32, String),
}

/// The group-message `to` for a [`ConnSpec`].
pub fn to_everyone() -> (u32, String) {
    (TO_EVERYONE, "null".to_owned())
}

/// One open connection: its spec, what its reader task counted, and its write half
/// (lent to a sender task during a phase).
pub(super) struct Conn {
    pub(super) spec: ConnSpec,
    pub(super) shared: Arc<Shared>,
    pub(super) sink: Option<WsSink>,
    pub(super) reader: JoinHandle<()>,
}

/// Opens one connection and waits for its `ready`.
pub(super) async fn connect_one(
    spec: ConnSpec,
    phase: Arc<AtomicU32>,
    read_buffer: usize,
) -> anyhow::Result<Conn> {
    let mut req = spec
        .url
        .as_str()
        .into_client_request()
        .with_context(|| format!("bad url {}", spec.url))?;
    if let Some(token) = &spec.token {
        let value = HeaderValue::from_str(&format!("Bearer {token}")).context("token header")?;
        req.headers_mut().insert("authorization", value);
    }
    let config = WebSocketConfig::default()
        .read_buffer_size(read_buffer)
        .max_message_size(Some(1 << 20));
    let (ws, _) = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_tungstenite::connect_async_with_config(req, Some(config), true),
    )
    .await
    .context("connect timed out")?
    .with_context(|| format!("connecting to {}", spec.url))?;
    let (sink, stream) = ws.split();
    let shared = Arc::new(Shared::new());
    let reader = tokio::spawn(read_loop(
        stream,
        Arc::clone(&shared),
        phase,
        ReaderCtx {
            me: spec.index,
            accept: spec.accept,
        },
    ));
    tokio::time::timeout(CONNECT_TIMEOUT, shared.ready.notified())
        .await
        .context("no ready frame in time")?;
    Ok(Conn {
        spec,
        shared,
        sink: Some(sink),
        reader,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(sender: u32, to: u32) -> Marker {
        Marker {
            phase: 1,
            sender,
            to,
            seq: 0,
            sent_us: 0,
        }
    }

    /// A direct message to someone else is a misdelivery; one's own and one's partner's are not.
    #[test]
    fn misdelivery_rules() {
        assert!(Accept::Partner(3).allows(2, &m(2, 3)));
        assert!(Accept::Partner(3).allows(2, &m(3, 2)));
        assert!(!Accept::Partner(3).allows(2, &m(4, 5)));
        assert!(!Accept::Partner(3).allows(2, &m(3, 4)));
        assert!(Accept::OwnOnly.allows(7, &m(7, 100)));
        assert!(!Accept::OwnOnly.allows(7, &m(8, 100)));
        assert!(Accept::Any.allows(7, &m(8, TO_EVERYONE)));
    }
}
