//! One sender task: the frames it writes (stamped with a [`Marker`]) and its two pacings,
//! by rate and by a window of unacknowledged messages. Every write has a timeout.

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

use super::WsSink;
use crate::marker::{Marker, now_us};
use crate::reader::Shared;

/// One socket write (or flush) must finish within this.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// What one sender task stamps into its messages.
pub(super) struct SenderCtx {
    pub(super) me: u32,
    pub(super) to: u32,
    pub(super) receiver_json: String,
    pub(super) phase: u32,
    pub(super) text_bytes: usize,
}

/// What one sender task did.
#[derive(Default)]
pub(super) struct Sent {
    pub(super) sent: u64,
    pub(super) intended: u64,
    pub(super) errors: u64,
}

impl SenderCtx {
    /// The frame natter expects; the ceiling echoes it verbatim.
    fn frame(&self, seq: u64) -> Message {
        let marker = Marker {
            phase: self.phase,
            sender: self.me,
            to: self.to,
            seq,
            sent_us: now_us(),
        };
        Message::text(format!(
            r#"{{"type":"chat_message","message":"{}","client_id":"c{}-{}-{}","receiver_username":{}}}"#,
            marker.text(self.text_bytes),
            self.me,
            self.phase,
            seq,
            self.receiver_json
        ))
    }

    /// Sends `rate` messages per second until `deadline`, catching up in bursts each
    /// millisecond tick; what it could not send in time shows as `intended - sent`.
    pub(super) async fn by_rate(
        &self,
        sink: &mut WsSink,
        rate: f64,
        started: Instant,
        deadline: Instant,
    ) -> Sent {
        let mut out = Sent::default();
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let total = (deadline - started).as_secs_f64();
        out.intended = (total * rate).floor() as u64;
        while Instant::now() < deadline {
            tick.tick().await;
            let due = ((started.elapsed().as_secs_f64().min(total)) * rate).floor() as u64;
            if due <= out.sent {
                continue;
            }
            while out.sent < due {
                let frame = self.frame(out.sent);
                if !write(sink.feed(frame)).await {
                    out.errors += 1;
                    return out;
                }
                out.sent += 1;
            }
            if !write(sink.flush()).await {
                out.errors += 1;
                return out;
            }
        }
        out
    }

    /// Keeps up to the window's worth of messages unacknowledged until `deadline`.
    pub(super) async fn by_window(
        &self,
        sink: &mut WsSink,
        shared: &Shared,
        deadline: Instant,
        limit: u64,
    ) -> Sent {
        let mut out = Sent::default();
        while out.sent < limit {
            let deadline = tokio::time::Instant::from_std(deadline);
            let Ok(Ok(first)) = tokio::time::timeout_at(deadline, shared.window.acquire()).await
            else {
                break;
            };
            first.forget();
            let mut n = 1;
            while out.sent + n < limit {
                let Ok(p) = shared.window.try_acquire() else {
                    break;
                };
                p.forget();
                n += 1;
            }
            for _ in 0..n {
                let frame = self.frame(out.sent);
                if !write(sink.feed(frame)).await {
                    out.errors += 1;
                    return out;
                }
                out.sent += 1;
            }
            if !write(sink.flush()).await {
                out.errors += 1;
                return out;
            }
        }
        out.intended = out.sent;
        out
    }
}

async fn write<F, E>(f: F) -> bool
where
    F: std::future::Future<Output = Result<(), E>>,
{
    matches!(tokio::time::timeout(WRITE_TIMEOUT, f).await, Ok(Ok(())))
}
