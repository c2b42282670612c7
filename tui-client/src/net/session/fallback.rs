//! The socket is down: wait out the backoff while probing HTTP every `POLL_INTERVAL`.
//! While HTTP answers the badge says FALLBACK, new messages arrive by polling
//! `?after=<last id>` and the outbox goes out by POST; when HTTP comes back after failing,
//! the socket is retried at once.
//!
//! The badge never waits for a probe: it is set the moment the socket is found down, and a
//! request that has not answered within [`SLOW_ANSWER`] sets it to what it is without HTTP
//! while the request goes on. A frozen server (SIGSTOP, a hung host behind a live tunnel)
//! still has its connections accepted by the kernel and answers nothing, so before this
//! the badge said LIVE for the request's whole 10 s timeout after the socket had died.

use std::future::Future;
use std::time::Duration;

use natter_shared::MessageId;
use tokio::time::{Instant, sleep_until};

use super::{Actor, Command, Session, State};
use crate::error::{ApiError, Disposition, Retry};
use crate::msg::NetEvent;
use crate::net::http::Query;
use crate::net::{POLL_INTERVAL, backoff, random_u64};

/// How long an HTTP request made while the socket is down may go unanswered before the
/// badge stops counting on HTTP. The request itself is not cut short (a slow link still
/// delivers), so this only decides what the badge says meanwhile.
pub(super) const SLOW_ANSWER: Duration = Duration::from_secs(1);

impl Actor {
    /// [`State::Down`]: waits out the backoff, polling HTTP (FALLBACK when it answers),
    /// then [`State::Connecting`]; early, to retry the socket at once, when HTTP comes back
    /// after failing.
    pub(super) async fn down(&mut self, s: &mut Session) -> State {
        let delay = backoff(s.failures.saturating_sub(1), random_u64());
        let deadline = Instant::now() + delay;
        s.retry_at = deadline;
        // Said before the first probe, which may take long to answer.
        self.show_down(s).await;
        let mut was_ok = s.http_ok;
        loop {
            // Before the poll, which may post them: shown queued even while nothing answers.
            self.adopt(s).await;
            let ok = self.poll(s).await;
            self.show_down(s).await;
            if ok && !was_ok && s.failures > 1 {
                // The server is back: try the socket now rather than at the end of a long wait.
                return State::Connecting;
            }
            was_ok = ok;
            let next_poll = (Instant::now() + POLL_INTERVAL).min(deadline);
            loop {
                tokio::select! {
                    () = sleep_until(next_poll) => break,
                    cmd = self.cmds.recv() => match self.on_command(s, cmd) {
                        Command::Queued(_) if s.http_ok => {
                            self.flush_http(s).await;
                            self.show_down(s).await;
                        }
                        Command::Queued(_) | Command::Nothing => {}
                        Command::End(next) => return State::Ended(next),
                    },
                }
            }
            if Instant::now() >= deadline {
                return State::Connecting;
            }
        }
    }

    /// Tells the app the badge for a socket that is down.
    async fn show_down(&self, s: &Session) {
        self.link(s.down_link(), Some(s.retry_in())).await;
    }

    /// Awaits an HTTP call made while the socket is down; if it has not answered within
    /// [`SLOW_ANSWER`], the badge says so at once (`unanswered`, from
    /// [`Session::unanswered_link`]) and the call goes on to its own timeout.
    pub(super) async fn answer<T>(
        &self,
        unanswered: NetEvent,
        call: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        let mut call = std::pin::pin!(call);
        if let Ok(answered) = tokio::time::timeout(SLOW_ANSWER, call.as_mut()).await {
            return answered;
        }
        self.emit(unanswered).await;
        call.await
    }

    /// One HTTP poll: fetch what is new, then flush the outbox by POST. Returns whether HTTP
    /// answered.
    async fn poll(&mut self, s: &mut Session) -> bool {
        if !s.history_loaded && self.load_history(s, Some(s.unanswered())).await.is_err() {
            s.http_ok = false;
            return false;
        }
        let after = s.last_id.or(Some(MessageId(0)));
        loop {
            let query = Query {
                after: s.last_id.or(after),
                limit: Some(1000),
                ..Query::default()
            };
            match self
                .answer(s.unanswered(), self.http.messages(&s.token, query))
                .await
            {
                Ok(batch) => {
                    let full = batch.len() >= 1000;
                    if let Some(last) = batch.last() {
                        s.last_id = Some(last.id);
                    }
                    s.history_loaded = true;
                    s.confirm_seen(&batch);
                    if !batch.is_empty() {
                        self.emit(NetEvent::Messages(batch)).await;
                    }
                    if !full {
                        break;
                    }
                }
                Err(_) => {
                    s.http_ok = false;
                    return false;
                }
            }
        }
        s.http_ok = true;
        if let Ok(users) = self.answer(s.unanswered(), self.http.users(&s.token)).await {
            self.emit(NetEvent::Users(users)).await;
        }
        self.flush_http(s).await;
        s.http_ok
    }

    /// Sends the outbox by POST, in order, stopping at the first failure that may pass.
    async fn flush_http(&mut self, s: &mut Session) {
        while let Some(o) = s.queue.first().cloned() {
            match self
                .answer(s.unanswered(), self.http.post_message(&s.token, &o))
                .await
            {
                Ok(m) => {
                    s.confirm(&o.client_id);
                    self.emit(NetEvent::Message(m)).await;
                }
                Err(e) => match e.disposition() {
                    // Untrusted: nothing reached the server, so the message stays queued.
                    Disposition::Retry(Retry::Unreachable | Retry::Untrusted) => {
                        s.http_ok = false;
                        return;
                    }
                    // The token is renewed when the socket is next refused.
                    Disposition::Retry(Retry::RateLimited) | Disposition::Renew => return,
                    Disposition::Refused => {
                        s.confirm(&o.client_id);
                        self.emit(NetEvent::Rejected {
                            client_id: o.client_id,
                            reason: e.to_string(),
                        })
                        .await;
                    }
                },
            }
        }
    }
}
