//! The publisher: this instance's commits and token revocations, out to Redis (`PUBLISH`).

use std::sync::Arc;

use redis::aio::ConnectionManager;
use tokio::sync::mpsc;

use super::codec::{Batch, Revoked, hex};
use super::{Names, REDIS_TIMEOUT};
use crate::bus::Outgoing;
use crate::state::AppState;

/// The publisher: drains what the instance has to say and publishes it in one pipeline.
/// A failed publish is dropped, not retried: the others fill from PostgreSQL.
pub(super) async fn publish(
    state: Arc<AppState>,
    mut redis: ConnectionManager,
    names: Names,
    me: String,
    mut rx: mpsc::Receiver<Outgoing>,
) {
    let mut pending = Vec::new();
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            n = rx.recv_many(&mut pending, 64) => if n == 0 { return },
        }
        let mut pipe = redis::pipe();
        for out in pending.drain(..) {
            let (channel, payload) = match out {
                Outgoing::Messages(messages) => (
                    &names.messages,
                    serde_json::to_vec(&Batch {
                        from: me.clone(),
                        messages,
                    }),
                ),
                Outgoing::Revoked(hash) => (
                    &names.tokens,
                    serde_json::to_vec(&Revoked {
                        from: me.clone(),
                        token: hex(&hash),
                    }),
                ),
            };
            match payload {
                Ok(p) => {
                    pipe.publish(channel, p).ignore();
                }
                Err(e) => tracing::error!(error = %e, "cannot encode a bus message"),
            }
        }
        match tokio::time::timeout(REDIS_TIMEOUT, pipe.query_async::<()>(&mut redis)).await {
            Ok(Ok(())) => {}
            // The subscriber logs Redis's state; one line per failed publish would flood.
            Ok(Err(e)) => tracing::debug!(error = %e, "publish to Redis failed"),
            Err(_) => tracing::debug!("publish to Redis timed out"),
        }
    }
}
