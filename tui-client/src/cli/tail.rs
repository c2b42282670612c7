//! `natter tail`: prints messages as they arrive over the socket, resuming after the last
//! id printed. It waits for a server that cannot be reached (at start or after a drop) with
//! the reconnect backoff, and ends cleanly on SIGINT, SIGTERM or a closed stdout pipe.

use std::time::Duration;

use natter_shared::{MessageId, ServerFrame, Timestamp, validate};
use tokio::signal::unix::{Signal, SignalKind, signal};

use super::Ctx;
use super::exit::{EXIT_AUTH, EXIT_FAILURE, EXIT_NETWORK, Failure, Outcome};
use super::output::{json_line, out, plain_line, stdout_closed};
use crate::error::ApiError;
use crate::net::http::Query;
use crate::net::ws::{self, ConnectError, Incoming};
use crate::net::{backoff, random_u64};

fn token_refused() -> Failure {
    Failure::new(
        EXIT_AUTH,
        "the server refused the token; log in again with `natter login NAME`",
    )
}

/// What ends `tail` cleanly: SIGINT, SIGTERM, or its stdout pipe closing.
struct Stop {
    sigint: Signal,
    sigterm: Signal,
    pipe_check: tokio::time::Interval,
}

impl Stop {
    fn new() -> Result<Self, Failure> {
        let install = |kind| signal(kind).map_err(|e| Failure::new(EXIT_FAILURE, e.to_string()));
        Ok(Stop {
            sigint: install(SignalKind::interrupt())?,
            sigterm: install(SignalKind::terminate())?,
            pipe_check: tokio::time::interval(Duration::from_secs(1)),
        })
    }

    /// Resolves on SIGINT or SIGTERM, or once stdout's reader is gone (checked every
    /// second, so `tail` stops even when no message arrives to fail a write).
    async fn stopped(&mut self) {
        tokio::select! {
            _ = self.sigint.recv() => {}
            _ = self.sigterm.recv() => {}
            () = async {
                loop {
                    self.pipe_check.tick().await;
                    if stdout_closed() {
                        return;
                    }
                }
            } => {}
        }
    }

    /// Sleeps for `delay`; true when `tail` should stop instead.
    async fn wait(&mut self, delay: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(delay) => stdout_closed(),
            () = self.stopped() => true,
        }
    }
}

impl Ctx {
    pub(super) async fn tail(&self, after: Option<MessageId>, json: bool) -> Outcome {
        let token = self.token()?;
        let mut stop = Stop::new()?;
        let mut after = match after {
            Some(a) => a,
            None => match self.start_point(&token, &mut stop).await? {
                Some(a) => a,
                None => return Ok(()),
            },
        };
        let mut attempt: u32 = 0;
        loop {
            let connecting = ws::connect(&self.server, &self.tls, &token, Some(after));
            let socket = tokio::select! {
                s = connecting => s,
                () = stop.stopped() => return Ok(()),
            };
            match socket {
                Ok(mut socket) => {
                    attempt = 0;
                    let mut heartbeat = ws::Heartbeat::new();
                    loop {
                        let incoming = tokio::select! {
                            i = heartbeat.next(&mut socket) => i,
                            () = stop.stopped() => return Ok(()),
                        };
                        match incoming {
                            Incoming::Frame(ServerFrame::ChatMessage { message }) => {
                                if message.id <= after {
                                    continue;
                                }
                                after = message.id;
                                let line = if json {
                                    json_line(&message)
                                } else {
                                    plain_line(&message)
                                };
                                if out(&line).is_err() {
                                    return Ok(());
                                }
                            }
                            Incoming::Closed(_) => break,
                            _ => {}
                        }
                    }
                }
                Err(ConnectError::Unauthorized) => return Err(token_refused()),
                // Reconnecting cannot fix it: say what to do, once, and stop.
                Err(ConnectError::Untrusted(why)) => {
                    return Err(Failure::new(
                        EXIT_NETWORK,
                        format!("cannot connect securely to {}: {why}", self.server),
                    ));
                }
                Err(_) => attempt += 1,
            }
            if stop
                .wait(backoff(attempt.saturating_sub(1), random_u64()))
                .await
            {
                return Ok(());
            }
        }
    }

    /// Where `tail` without `--after` starts: after the newest message stored when it
    /// started. A server that cannot be reached yet is waited for, with the reconnect
    /// backoff; it then starts after the newest message stored before `tail` started (by
    /// the server's clock), so what is sent while it waits is printed too. `Ok(None)`: a
    /// signal or a closed pipe ended the wait.
    async fn start_point(
        &self,
        token: &str,
        stop: &mut Stop,
    ) -> Result<Option<MessageId>, Failure> {
        let started = Timestamp::now();
        let mut attempt: u32 = 0;
        loop {
            let found = if attempt == 0 {
                let newest = Query {
                    limit: Some(1),
                    ..Query::default()
                };
                self.http
                    .messages(token, newest)
                    .await
                    .map(|page| page.last().map_or(MessageId(0), |m| m.id))
            } else {
                self.last_before(token, started).await
            };
            match found {
                Ok(id) => return Ok(Some(id)),
                Err(e) if e.is_unauthorized() => return Err(token_refused()),
                Err(e) if e.is_network() => {
                    if attempt == 0 {
                        eprintln!("natter: {e}; waiting for it");
                    }
                    if stop.wait(backoff(attempt, random_u64())).await {
                        return Ok(None);
                    }
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The id of the newest message stored before `since`, walking back page by page
    /// (0 when there is none).
    async fn last_before(&self, token: &str, since: Timestamp) -> Result<MessageId, ApiError> {
        let mut before = None;
        loop {
            let query = Query {
                before,
                limit: Some(validate::MAX_HISTORY_LIMIT),
                ..Query::default()
            };
            let page = self.http.messages(token, query).await?;
            if let Some(m) = page.iter().rev().find(|m| m.created_at < since) {
                return Ok(m.id);
            }
            match page.first() {
                Some(first) if page.len() >= validate::MAX_HISTORY_LIMIT => before = Some(first.id),
                _ => return Ok(MessageId(0)),
            }
        }
    }
}
