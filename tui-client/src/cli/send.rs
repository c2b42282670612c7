//! `send`: messages go through the account's outbox, as they do from the chat screen.
//!
//! Each message is written to the outbox (durably, with its `client_id`) before it is first
//! posted, and leaves it when the server answers for it: stored (201, or 200 for a repeated
//! `client_id`) or refused for good (any 4xx but 401, 408 and 429). Whatever was already
//! waiting there (a killed `send`, a chat screen that quit offline) goes out first, oldest
//! first, so the account's messages keep their order; stderr says how many, `--json`
//! prints them with the rest, and one of them refused for good is reported and dropped
//! without failing the run (the run's exit code is about its own messages).
//!
//! When the server does not answer (or asks to slow down), stderr says so once, with how
//! long `send` keeps trying. When it stays away (no answer or 429 for `--retry-for`), nothing more is
//! posted: the rest of stdin goes into the outbox and `send` exits 4 saying how many wait.
//! A 401 keeps them too (the chat screen renews the token), except in a token's own outbox,
//! which nobody else could ever send.
//!
//! `send -` takes stdin one line at a time, reading it a byte at a time so that nothing
//! beyond the current line is taken from the pipe; each line is in the outbox before the
//! next is read. So a `send -` killed at any point has lost at most the line it was in the
//! middle of taking; the next `send` (or chat screen) delivers the rest, each once.
//!
//! Concurrency: the whole run holds the outbox's sending lock, so a second `send` of the
//! same account waits (up to `--retry-for`) rather than posting the same entries; a chat
//! screen running beside it may post an entry too, which the server stores once. Why this
//! is enough is in [`crate::outbox`]'s documentation. If the screen removes one of this
//! run's entries first, `send` posts it once more (same `client_id`) to learn its fate.

use std::time::Duration;

use natter_shared::{ClientId, Message, Timestamp, Username, validate};
use tokio::time::Instant;

use super::exit::{EXIT_FAILURE, EXIT_NETWORK, EXIT_USAGE, Failure, Outcome};
use super::output::{json_line, out};
use super::stdin::StdinLines;
use super::{Ctx, parse_name};
use crate::credentials;
use crate::error::{ApiError, Disposition, Retry};
use crate::net::http::Http;
use crate::net::{backoff, random_u64};
use crate::outbox::{Outbox, Outgoing};
use crate::paths::HeldLock;

/// How often a `send` waiting for another one's sending lock tries again.
const LOCK_POLL: Duration = Duration::from_millis(100);

/// What `send` was asked to do.
pub(super) struct SendArgs<'a> {
    /// `--to`.
    pub(super) to: Option<&'a str>,
    /// `--json`.
    pub(super) json: bool,
    /// The words, or `["-"]` for stdin.
    pub(super) words: &'a [String],
    /// How long to keep trying one message (and to wait for another `send`).
    pub(super) retry_for: Duration,
}

/// Where this run's messages come from.
enum Source {
    Text(String),
    Stdin(StdinLines),
}

impl Ctx {
    pub(super) async fn send(&self, args: SendArgs<'_>) -> Outcome {
        let receiver = args.to.map(parse_name).transpose()?;
        let source = if args.words == ["-"] {
            Source::Stdin(StdinLines::open()?)
        } else {
            let text = args.words.join(" ");
            validate::validate_text(&text, validate::MAX_TEXT_CHARS)
                .map_err(|e| Failure::new(EXIT_USAGE, e.to_string()))?;
            Source::Text(text)
        };
        let identity = self.identity()?;
        let dir = self.paths.outbox_dir(self.server.http_base());
        let (outbox, who) = match &identity.username {
            Some(name) => (Outbox::new(&dir, name), Who::User(name.clone())),
            None => (Outbox::for_token(&dir, &identity.token), Who::Token),
        };
        let _lock = lock_sending(&outbox, &who, args.retry_for).await?;
        let mut run = Run {
            http: &self.http,
            token: identity.token,
            outbox,
            who,
            receiver,
            json: args.json,
            retry_for: args.retry_for,
            prefix: credentials::random_string(12),
            accepted: 0,
            unresolved: Vec::new(),
            earlier: 0,
            told_earlier: false,
            server_away: false,
            server: self.server.http_base().to_owned(),
            told_waiting: false,
        };
        let result = run.go(source).await;
        run.tell_earlier();
        result.map_err(|f| run.mention_kept(f))
    }
}

/// Waits (polling, up to `wait`) for the outbox's sending lock.
async fn lock_sending(outbox: &Outbox, who: &Who, wait: Duration) -> Result<HeldLock, Failure> {
    let give_up = Instant::now() + wait;
    loop {
        match outbox.try_lock_sending() {
            Ok(Some(lock)) => return Ok(lock),
            Ok(None) if Instant::now() < give_up => tokio::time::sleep(LOCK_POLL).await,
            Ok(None) => {
                return Err(Failure::new(
                    EXIT_FAILURE,
                    format!(
                        "another natter send as {who} is still sending after {} s; nothing was sent (try again, or wait longer with --retry-for)",
                        wait.as_secs()
                    ),
                ));
            }
            Err(e) => return Err(Failure::new(EXIT_FAILURE, format!("outbox: {e:#}"))),
        }
    }
}

/// Whose outbox it is, for messages.
enum Who {
    User(Username),
    /// A `NATTER_TOKEN` no stored account has.
    Token,
}

impl std::fmt::Display for Who {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Who::User(name) => write!(f, "{name}"),
            Who::Token => f.write_str("this NATTER_TOKEN"),
        }
    }
}

/// One run of `send`, holding the sending lock.
struct Run<'a> {
    http: &'a Http,
    token: String,
    outbox: Outbox,
    who: Who,
    receiver: Option<Username>,
    json: bool,
    retry_for: Duration,
    /// This run's client_ids are `<prefix>-<n>`.
    prefix: String,
    accepted: usize,
    /// This run's messages the server has not answered for yet, oldest first.
    unresolved: Vec<Outgoing>,
    /// Messages from before this run delivered before its first own one.
    earlier: usize,
    told_earlier: bool,
    /// The server could not be reached (or kept asking us to slow down) until we gave up.
    server_away: bool,
    /// The server, as the waiting line names it.
    server: String,
    /// Whether stderr was told that we are waiting for the server (once per run: the
    /// retries are quiet, and a minute of silence would look like a hang).
    told_waiting: bool,
}

/// How a post ended, once retries are over.
enum Answer {
    Stored(Message),
    /// Not stored, and sending it again will not change that: it leaves the outbox.
    Refused(ApiError),
    /// Not stored yet (no answer, rate limited, token refused): it stays in the outbox.
    NotYet(ApiError),
}

impl Run<'_> {
    async fn go(&mut self, source: Source) -> Outcome {
        let mut lines = match source {
            Source::Text(text) => {
                self.accept(text)?;
                return self.deliver().await;
            }
            Source::Stdin(lines) => lines,
        };
        // What was waiting goes out first, without waiting for stdin.
        let mut delivered = self.deliver().await;
        while delivered.is_ok() {
            let Some(text) = next_message(&mut lines).await? else {
                return Ok(());
            };
            self.accept(text)?;
            delivered = self.deliver().await;
        }
        if self.server_away {
            // Take the rest of stdin into the outbox, so that every line the script wrote
            // goes out later, in order.
            while let Some(text) = next_message(&mut lines).await? {
                self.accept(text)?;
            }
        }
        delivered
    }

    /// Writes a new message of this run to the outbox: from here on it is not lost.
    fn accept(&mut self, text: String) -> Outcome {
        let client_id = ClientId::parse(&format!("{}-{}", self.prefix, self.accepted))
            .map_err(|e| Failure::new(EXIT_FAILURE, e.to_string()))?;
        self.accepted += 1;
        let outgoing = Outgoing {
            client_id,
            receiver: self.receiver.clone(),
            text,
            typed_at: Some(Timestamp::now()),
        };
        self.outbox
            .push(&outgoing)
            .map_err(|e| Failure::new(EXIT_FAILURE, format!("outbox: {e:#}")))?;
        self.unresolved.push(outgoing);
        Ok(())
    }

    /// Sends the outbox, oldest first, until it is empty or the server cannot take more.
    async fn deliver(&mut self) -> Outcome {
        loop {
            let waiting = self.entries()?;
            let next = match waiting.into_iter().next() {
                Some(next) => next,
                None => match self.unresolved.first() {
                    // One of ours left the file without our hearing the answer: a chat screen
                    // sent it. Ask again with the same client_id; the server stores it once.
                    Some(lost_sight) => {
                        let again = lost_sight.clone();
                        self.outbox
                            .push(&again)
                            .map_err(|e| Failure::new(EXIT_FAILURE, format!("outbox: {e:#}")))?;
                        continue;
                    }
                    None => return Ok(()),
                },
            };
            let own = self
                .unresolved
                .iter()
                .any(|o| o.client_id == next.client_id);
            if own {
                self.tell_earlier();
            }
            match self.post(&next).await {
                Answer::Stored(message) => {
                    self.resolve(&next.client_id)?;
                    if !own && !self.told_earlier {
                        self.earlier += 1;
                    }
                    if self.json {
                        let _ = out(&json_line(&message));
                    }
                }
                Answer::Refused(e) if own => {
                    self.resolve(&next.client_id)?;
                    return Err(e.into());
                }
                Answer::Refused(e) => {
                    self.resolve(&next.client_id)?;
                    let to = next
                        .receiver
                        .as_ref()
                        .map_or_else(|| "everyone".to_owned(), ToString::to_string);
                    eprintln!("natter: an earlier unsent message to {to} was refused: {e}");
                }
                Answer::NotYet(e) if e.disposition() == Disposition::Renew => {
                    if matches!(self.who, Who::Token) {
                        // Nobody else can send these: the file belongs to a refused token.
                        for o in self.entries()? {
                            self.resolve(&o.client_id)?;
                        }
                    }
                    return Err(e.into());
                }
                Answer::NotYet(e) => {
                    // Unreachable, or still asking us to slow down: either way, later.
                    self.server_away = true;
                    return Err(Failure::new(EXIT_NETWORK, e.to_string()));
                }
            }
        }
    }

    /// POSTs with the same client_id until the server answers for it: network failures and
    /// rate limits are retried with backoff for up to `retry_for`.
    async fn post(&mut self, outgoing: &Outgoing) -> Answer {
        let give_up = Instant::now() + self.retry_for;
        let mut attempt = 0;
        loop {
            match self.http.post_message(&self.token, outgoing).await {
                Ok(m) => return Answer::Stored(m),
                Err(e) => match e.disposition() {
                    Disposition::Retry(why @ (Retry::Unreachable | Retry::RateLimited)) => {
                        let pause = backoff(attempt, random_u64());
                        if Instant::now() + pause > give_up {
                            return Answer::NotYet(e);
                        }
                        self.tell_waiting(why == Retry::RateLimited);
                        tokio::time::sleep(pause).await;
                        attempt += 1;
                    }
                    // Nothing reached the server; waiting will not help, but the message
                    // stays for the next send with --ca-file (or once the chat screen has
                    // renewed the token).
                    Disposition::Retry(Retry::Untrusted) | Disposition::Renew => {
                        return Answer::NotYet(e);
                    }
                    Disposition::Refused => return Answer::Refused(e),
                },
            }
        }
    }

    fn entries(&self) -> Result<Vec<Outgoing>, Failure> {
        self.outbox
            .entries()
            .map_err(|e| Failure::new(EXIT_FAILURE, format!("outbox: {e:#}")))
    }

    /// The server answered for `client_id`: it leaves the outbox.
    fn resolve(&mut self, client_id: &ClientId) -> Outcome {
        self.unresolved.retain(|o| &o.client_id != client_id);
        self.outbox
            .remove(client_id)
            .map_err(|e| Failure::new(EXIT_FAILURE, format!("outbox: {e:#}")))
    }

    /// Says once, on stderr, how many messages from before this run went out first.
    fn tell_earlier(&mut self) {
        if !self.told_earlier && self.earlier > 0 {
            let n = self.earlier;
            let s = if n == 1 { "" } else { "s" };
            eprintln!("natter: delivered {n} earlier unsent message{s} first");
        }
        self.told_earlier = true;
    }

    /// Says once, on stderr, that the server is not answering (or asks us to slow down) and
    /// how long `send` keeps trying.
    fn tell_waiting(&mut self, rate_limited: bool) {
        if self.told_waiting {
            return;
        }
        self.told_waiting = true;
        let what = if rate_limited {
            "asks to slow down"
        } else {
            "not answering"
        };
        eprintln!(
            "natter: server at {} {what}; retrying for up to {} s (messages are kept in the outbox)",
            self.server,
            self.retry_for.as_secs()
        );
    }

    /// Adds to a failure's line what is still waiting in the outbox, and where it goes.
    fn mention_kept(&self, mut failure: Failure) -> Failure {
        let n = self.outbox.entries().map_or(0, |e| e.len());
        if n == 0 {
            return failure;
        }
        let (count, goes) = if n == 1 {
            ("1 message".to_owned(), "it goes")
        } else {
            (format!("{n} messages"), "they go")
        };
        let with = match &self.who {
            Who::User(_) => "the next send or chat screen",
            Who::Token => "the next send with this NATTER_TOKEN",
        };
        let sep = if failure.message.ends_with(['.', '?', '!']) {
            " "
        } else {
            "; "
        };
        failure.message = format!(
            "{}{sep}{count} kept in the outbox; {goes} out with {with}",
            failure.message
        );
        failure
    }
}

/// The next message on stdin, checked: a line that is not a valid message stops `send`.
async fn next_message(lines: &mut StdinLines) -> Result<Option<String>, Failure> {
    let Some((number, text)) = lines.next().await? else {
        return Ok(None);
    };
    validate::validate_text(&text, validate::MAX_TEXT_CHARS).map_err(|e| {
        Failure::new(
            EXIT_USAGE,
            format!("line {number}: {e}; the lines after it were not read"),
        )
    })?;
    Ok(Some(text))
}
