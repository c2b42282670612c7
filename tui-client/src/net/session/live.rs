//! The live socket: flush the queue over it, then relay frames to the app and sends to the
//! server until it drops or the identity ends. Our own pings notice a server that stops
//! answering without closing anything; the outbox file is looked at every
//! [`OUTBOX_CHECK`] for what a `natter send` left there; a send the server could not take
//! yet (rate limited, busy, storage trouble) is resent after [`RATE_LIMIT_PAUSE`], and one
//! refused for good leaves the queue.

use std::time::Duration;

use natter_shared::{ClientId, ErrorCode, ServerFrame};
use tokio::time::{Instant, sleep_until};

use super::{Actor, Command, Next, Session, State};
use crate::msg::NetEvent;
use crate::net::ws::{self, Incoming};

/// Wait before resending a message the server rate-limited.
const RATE_LIMIT_PAUSE: Duration = Duration::from_secs(1);
/// How often a live socket asks whether the outbox file changed (the keeper looks at its
/// length): what a `natter send` left there goes out within about this long.
const OUTBOX_CHECK: Duration = Duration::from_secs(1);

impl Actor {
    /// The socket is up: flush the outbox, then relay frames until it drops
    /// ([`State::Lost`]) or the identity ends ([`State::Ended`]).
    pub(super) async fn live(&mut self, s: &mut Session, mut socket: ws::Socket) -> State {
        self.adopt(s).await;
        for o in s.queue.clone() {
            if let Err(e) = ws::send(&mut socket, &o).await {
                return State::Lost(e);
            }
        }
        // Who is online, asked beside the socket rather than before reading it: a server
        // that freezes right now would otherwise hold this loop, and the badge at LIVE, for
        // the request's whole timeout before the heartbeat could notice.
        let users = {
            let (http, token) = (self.http.clone(), s.token.clone());
            async move { http.users(&token).await }
        };
        let mut users = std::pin::pin!(users);
        let mut users_pending = true;
        let mut resend_at: Option<Instant> = None;
        let mut resend: Vec<ClientId> = Vec::new();
        // Our own pings: the only way to notice a server that stops answering without
        // closing anything, so that the badge does not say LIVE about a dead socket.
        let mut heartbeat = ws::Heartbeat::new();
        let mut outbox_check = tokio::time::interval(OUTBOX_CHECK);
        outbox_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        outbox_check.reset();
        loop {
            let far = Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                incoming = heartbeat.next(&mut socket) => {
                    match incoming {
                        Incoming::Closed(reason) => return State::Lost(reason),
                        Incoming::Unknown(_) => {}
                        Incoming::Frame(ServerFrame::ChatMessage { message }) => {
                            s.last_id = Some(s.last_id.map_or(message.id, |l| l.max(message.id)));
                            s.confirm_seen(std::slice::from_ref(&message));
                            self.emit(NetEvent::Message(message)).await;
                        }
                        Incoming::Frame(ServerFrame::Ready { last_id, .. }) => {
                            if let Some(id) = last_id {
                                s.last_id = Some(s.last_id.map_or(id, |l| l.max(id)));
                            }
                        }
                        Incoming::Frame(ServerFrame::Presence { username, online }) => {
                            self.emit(NetEvent::Presence { username, online }).await;
                        }
                        Incoming::Frame(ServerFrame::Error { error, client_id }) => {
                            let mine = client_id
                                .as_deref()
                                .and_then(|c| s.queue.iter().find(|o| o.client_id.as_str() == c))
                                .map(|o| o.client_id.clone());
                            match (mine, error.code) {
                                (
                                    Some(cid),
                                    ErrorCode::RateLimited
                                    | ErrorCode::Internal
                                    | ErrorCode::Busy
                                    | ErrorCode::ShuttingDown
                                    | ErrorCode::StorageUnavailable
                                    | ErrorCode::StorageFull,
                                ) => {
                                    // Nothing was stored: the server may take it later.

                                    resend.push(cid);
                                    resend_at = Some(Instant::now() + RATE_LIMIT_PAUSE);
                                }
                                (Some(cid), _) => {
                                    s.confirm(&cid);
                                    self.emit(NetEvent::Rejected { client_id: cid, reason: error.message }).await;
                                }
                                (None, _) => self.emit(NetEvent::Error(error.message)).await,
                            }
                        }
                    }
                }
                answered = &mut users, if users_pending => {
                    users_pending = false;
                    if let Ok(users) = answered {
                        self.emit(NetEvent::Users(users)).await;
                    }
                }
                cmd = self.cmds.recv() => match self.on_command(s, cmd) {
                    Command::Queued(outgoing) => {
                        if let Err(e) = ws::send(&mut socket, &outgoing).await {
                            return State::Lost(e);
                        }
                    }
                    Command::Nothing => {}
                    Command::End(next) => {
                        if matches!(next, Next::Quit) {
                            let _ = socket.close(None).await;
                        }
                        return State::Ended(next);
                    }
                },
                _ = outbox_check.tick() => {
                    for o in self.adopt(s).await {
                        if let Err(e) = ws::send(&mut socket, &o).await {
                            return State::Lost(e);
                        }
                    }
                }
                () = sleep_until(resend_at.unwrap_or(far)), if resend_at.is_some() => {
                    resend_at = None;
                    for cid in std::mem::take(&mut resend) {
                        if let Some(o) = s.queue.iter().find(|o| o.client_id == cid).cloned()
                            && let Err(e) = ws::send(&mut socket, &o).await {
                                return State::Lost(e);
                            }
                    }
                }
            }
        }
    }
}
