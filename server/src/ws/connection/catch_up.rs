//! Catching up: reading what this connection missed after its cursor (the replay at
//! connect, or after falling behind), from the hub's recent frames or the store, page by
//! page, until the hub's last page returns it to live delivery; and the lagging gauge.

use futures_util::Sink;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};

use super::close::End;
use super::{Connection, STORE_PAGE};
use crate::hub::{CatchUp, Outbound, Subscription};
use crate::store::HistoryQuery;
use crate::ws::outgoing::Outgoing;

/// Where this connection's messages come from right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Feed {
    /// From the hub's queue.
    Live,
    /// From [`Hub::catch_up`](crate::hub::Hub::catch_up) (and the store), after the cursor.
    CatchingUp,
}

/// One step of catching up: a page of what we missed after the cursor, from the hub's
/// recent frames, or from the store when those no longer reach back far enough. The hub's
/// last page returns us to live delivery, with the presence changes missed (for the caller
/// to send after `ready`).
pub(super) async fn catch_up_step<K>(
    out: &mut Outgoing<'_, K>,
    conn: &Connection,
    sub: &Subscription,
) -> Result<(Feed, Vec<Outbound>), End>
where
    K: Sink<WsMessage, Error = WsError> + Unpin,
{
    let hub = &conn.state.hub;
    let mut missed_presence = Vec::new();
    let next = match hub.catch_up(&conn.user.username, sub.id, out.cursor, STORE_PAGE) {
        CatchUp::Recent {
            frames,
            presence,
            through,
            caught_up,
        } => {
            out.arm();
            for f in frames {
                out.feed_queued(f).await?;
            }
            out.cursor = out.cursor.max(through);
            missed_presence = presence;
            if caught_up {
                Feed::Live
            } else {
                Feed::CatchingUp
            }
        }
        CatchUp::Store { complete_after } => {
            let q = HistoryQuery {
                after: Some(out.cursor),
                before: None,
                limit: STORE_PAGE,
            };
            let page = match conn.state.store.visible_messages(conn.user.id, q).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::error!(error = %crate::error::Chain(&e), "reading missed messages failed");
                    return Err(End::Close(
                        CloseCode::Error,
                        "server error while sending history; reconnect",
                    ));
                }
            };
            // Armed after the read: a slow read is not the client's fault.
            out.arm();
            for m in &page {
                out.feed_stored(m).await?;
            }
            // A short page: nothing more we may see was committed when it was read, and
            // everything up to `complete_after` was committed before that.
            if page.len() < STORE_PAGE {
                out.cursor = out.cursor.max(complete_after);
            }
            Feed::CatchingUp
        }
    };
    out.flush().await?;
    Ok((next, missed_presence))
}

/// Counts this connection in the lagging gauge while it catches up after falling behind
/// (the replay at connect is not a lag), and out again however the session ends.
pub(super) struct LagGauge {
    gauge: metrics::Gauge,
    catch_ups: metrics::Counter,
    lagging: bool,
}

impl LagGauge {
    pub(super) fn new(m: &crate::metrics::Metrics) -> Self {
        LagGauge {
            gauge: m.lagging.clone(),
            catch_ups: m.catch_ups.clone(),
            lagging: false,
        }
    }

    pub(super) fn start(&mut self) {
        if !self.lagging {
            self.lagging = true;
            self.gauge.increment(1.0);
            self.catch_ups.increment(1);
        }
    }

    pub(super) fn end(&mut self) {
        if self.lagging {
            self.lagging = false;
            self.gauge.decrement(1.0);
        }
    }
}

impl Drop for LagGauge {
    fn drop(&mut self) {
        self.end();
    }
}
