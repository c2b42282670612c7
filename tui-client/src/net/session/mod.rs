//! The actor behind [`super::run`]: one identity at a time, through the connection states
//! of [`State`] (authenticate → connect ↔ live/down) until another name is chosen or the
//! app quits.
//!
//! Invariants:
//! - `queue` is the one list in memory of what waits to be sent; the outbox file is the
//!   one on disk, and the outbox keeper (`outbox::keeper`) its one writer here. A send
//!   reaches the queue only once on disk (the keeper hands the `Cmd::Send` on after its
//!   sync); it leaves only when the server confirmed or refused it, and the keeper then
//!   records that (`done`). Entries another process added (a `natter send` that could not
//!   deliver them) are taken in when the file changes: looked for every second while live, at every poll while down, and when the socket comes up
//!   ([`Actor::adopt`]). The app learns each by a `NetEvent::Queued` saying where it goes.
//! - `last_id` only advances over contiguous streams (socket frames, polls with `?after=`),
//!   never from a POST reply, so a resume never skips a message.
//!
//! This file: the actor's lifecycle and its states, one socket attempt, the queue, and the
//! two things every state shares: what a command from the app means
//! ([`Actor::on_command`], whether the socket is live, down or waiting for a password) and
//! loading history ([`Actor::load_history`], by the first socket attempt or the first poll).
//! Beside it, each state's step: `auth.rs` (authenticating, renewing, awaiting a password:
//! stored token, login, auto-register), `live.rs` (the socket is up) and `fallback.rs`
//! (the socket is down: backoff, HTTP polling, sending by POST).

mod auth;
mod fallback;
mod live;

use std::time::Duration;

use natter_shared::{ClientId, Message, MessageId, Username};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::NetConfig;
use super::http::{Http, Query};
use super::ws::{self, ConnectError};
use crate::error::{ApiError, Disposition};
use crate::msg::{Cmd, Link, NetEvent};
use crate::outbox::{Keeper, Outgoing};

/// Messages of history loaded when an identity starts.
const HISTORY: usize = 500;
/// Failed attempts in a row after which RECONNECTING becomes OFFLINE.
const OFFLINE_AFTER: u32 = 3;

/// Why the current identity's loop stopped.
enum Next {
    Login(Username, Option<String>),
    Quit,
}

/// What a command from the app means for the identity (see [`Actor::on_command`]).
enum Command {
    /// A new send for this identity, now in the queue.
    Queued(Outgoing),
    /// Nothing to do.
    Nothing,
    /// This identity ends: another name (or this one with a password), or quitting.
    End(Next),
}

/// Where one identity's connection stands. Each state's step (a method of [`Actor`])
/// carries it out and returns the next, so `Actor::identity` is the whole life of an
/// identity in one `match`:
///
/// ```text
/// Authenticating ──ok──▶ Connecting ──socket up──▶ Live ──dropped──▶ Lost ──▶ Down
///   │   ▲                  │  ▲  │                                            │
///   │   └─password typed─┐ │  │  └──no socket────────────────────────────────▶│
///   ▼                    │ │  └──backoff over, or the server back─────────────┘
/// AwaitingPassword ──────┘ └──token refused──▶ Renewing ──ok──▶ Connecting
/// ```
///
/// Any state ends in `Ended` when the app picks another name or quits.
enum State {
    /// Getting a token: the stored one, a login, or registering the name; with the password
    /// the user typed, if any.
    Authenticating(Option<String>),
    /// The name needs a password the user has been asked for.
    AwaitingPassword,
    /// The server refused the token: log in again with the stored password, or ask.
    Renewing,
    /// History (once per identity), then one socket attempt.
    Connecting,
    /// The socket is up (boxed: a socket is large, the other states small).
    Live(Box<ws::Socket>),
    /// The socket just dropped, for this reason.
    Lost(String),
    /// The socket is down: the backoff is waited out while HTTP is polled.
    Down,
    /// This identity is over.
    Ended(Next),
}

/// The network actor.
pub(super) struct Actor {
    config: NetConfig,
    http: Http,
    cmds: mpsc::UnboundedReceiver<Cmd>,
    outbox: Keeper,
    events: mpsc::Sender<NetEvent>,
}

/// State of one identity.
struct Session {
    username: Username,
    token: String,
    outbox: Keeper,
    queue: Vec<Outgoing>,
    last_id: Option<MessageId>,
    history_loaded: bool,
    ever_live: bool,
    /// Consecutive failed connection attempts.
    failures: u32,
    /// Whether HTTP answered at the last probe.
    http_ok: bool,
    /// When the next socket attempt is due, while the socket is down.
    retry_at: Instant,
}

impl Actor {
    pub(super) fn new(
        config: NetConfig,
        cmds: mpsc::UnboundedReceiver<Cmd>,
        outbox: Keeper,
        events: mpsc::Sender<NetEvent>,
    ) -> Self {
        let http = Http::new(config.server.clone(), &config.tls);
        Actor {
            config,
            http,
            cmds,
            outbox,
            events,
        }
    }

    async fn emit(&self, event: NetEvent) {
        // The app is gone only when it quits; then nothing is left to tell.
        let _ = self.events.send(event).await;
    }

    async fn link(&self, link: Link, retry_in: Option<Duration>) {
        self.emit(NetEvent::Link { link, retry_in }).await;
    }

    pub(super) async fn run(mut self) {
        let mut next = loop {
            match self.cmds.recv().await {
                Some(Cmd::Login { username, password }) => break Next::Login(username, password),
                Some(Cmd::Send { .. }) => {} // on disk already; sent once logged in
                Some(Cmd::Quit) | None => return,
            }
        };
        while let Next::Login(username, password) = next {
            next = self.identity(username, password).await;
        }
    }

    /// Runs one identity until another is chosen or the app quits.
    async fn identity(&mut self, username: Username, password: Option<String>) -> Next {
        let queue = match self.outbox.load(&username).await {
            Ok(q) => q,
            Err(e) => {
                self.emit(NetEvent::Error(format!("outbox: {e:#}"))).await;
                Vec::new()
            }
        };
        self.tell_queued(&username, &queue, &queue).await;
        self.link(Link::Connecting, None).await;
        let mut s = Session {
            username,
            token: String::new(),
            outbox: self.outbox.clone(),
            queue,
            last_id: None,
            history_loaded: false,
            ever_live: false,
            failures: 0,
            http_ok: false,
            retry_at: Instant::now(),
        };
        let mut state = State::Authenticating(password);
        loop {
            state = match state {
                State::Authenticating(password) => self.authenticate(&mut s, password).await,
                State::AwaitingPassword => self.wait_for_password(&mut s).await,
                State::Renewing => self.renew(&mut s).await,
                State::Connecting => self.connect(&mut s).await,
                State::Live(socket) => self.live(&mut s, *socket).await,
                State::Lost(reason) => self.lost(&mut s, &reason).await,
                State::Down => self.down(&mut s).await,
                State::Ended(next) => return next,
            };
        }
    }

    /// What a command from the app means for this identity, wherever the actor is waiting
    /// (socket live or down, backing off, waiting for a password): the one place that
    /// decides it. Each caller only carries out the answer (a live socket sends the new
    /// message at once; the others leave it queued for the next flush).
    fn on_command(&mut self, s: &mut Session, cmd: Option<Cmd>) -> Command {
        match cmd {
            Some(Cmd::Send { sender, outgoing }) => {
                if s.enqueue(&sender, outgoing.clone()) {
                    Command::Queued(outgoing)
                } else {
                    // Another identity's (on disk in its outbox), or already queued.
                    Command::Nothing
                }
            }
            // The same name again without a password: nothing changes.
            Some(Cmd::Login { username, password })
                if username.key() == s.username.key() && password.is_none() =>
            {
                Command::Nothing
            }
            Some(Cmd::Login { username, password }) => {
                Command::End(Next::Login(username, password))
            }
            Some(Cmd::Quit) | None => Command::End(Next::Quit),
        }
    }

    /// Loads history once, then makes one socket attempt.
    async fn connect(&mut self, s: &mut Session) -> State {
        if !s.history_loaded
            && let Err(e) = self.load_history(s, None).await
            && e.disposition() == Disposition::Renew
        {
            return State::Renewing;
        }
        if !s.history_loaded {
            s.failures += 1;
            return State::Down;
        }
        match ws::connect(&self.config.server, &self.config.tls, &s.token, s.last_id).await {
            Ok(socket) => {
                s.failures = 0;
                self.link(Link::Live, None).await;
                if s.ever_live {
                    self.emit(NetEvent::Notice("reconnected".into())).await;
                }
                s.ever_live = true;
                State::Live(Box::new(socket))
            }
            Err(ConnectError::Unauthorized) => State::Renewing,
            Err(ConnectError::Untrusted(why)) => {
                self.emit(NetEvent::Error(why)).await;
                s.failures += 1;
                State::Down
            }
            Err(_) => {
                s.failures += 1;
                State::Down
            }
        }
    }

    /// The socket dropped: say so, and wait it out.
    async fn lost(&mut self, s: &mut Session, reason: &str) -> State {
        // What HTTP did before the socket came up says nothing about now (a frozen server
        // answers neither): not FALLBACK until a probe has answered.
        s.http_ok = false;
        self.emit(NetEvent::Notice(format!(
            "connection lost ({}); reconnecting",
            reason.trim_start_matches("WebSocket protocol error: ")
        )))
        .await;
        State::Down
    }

    /// Loads the last [`HISTORY`] messages, once per identity: the first socket attempt
    /// asks for them, or the first poll while the socket is down, whichever comes first.
    /// With `slow`, a request slow to answer sets the badge to that meanwhile (see
    /// `fallback.rs`).
    async fn load_history(&self, s: &mut Session, slow: Option<NetEvent>) -> Result<(), ApiError> {
        let query = Query {
            limit: Some(HISTORY),
            ..Query::default()
        };
        let call = self.http.messages(&s.token, query);
        let batch = match slow {
            Some(unanswered) => self.answer(unanswered, call).await?,
            None => call.await?,
        };
        s.history_loaded = true;
        s.last_id = batch.last().map(|m| m.id).or(Some(MessageId(0)));
        s.confirm_seen(&batch);
        self.emit(NetEvent::Messages(batch)).await;
        Ok(())
    }

    /// Takes into the queue what others added to the outbox since it was last read (a
    /// `natter send` that gave up or was killed), each at its place in the file's order,
    /// and tells the app; returns what was taken. The keeper answers nothing while a
    /// `natter send` holds the sending lock: that one is delivering them, and the next look,
    /// once it is done, takes what it left. Entries no longer in the file (a `send` got
    /// them stored) stay queued until the server answers for them here too.
    async fn adopt(&self, s: &mut Session) -> Vec<Outgoing> {
        let Some(disk) = self.outbox.refresh(&s.username).await else {
            return Vec::new();
        };
        let taken = merge_in(&mut s.queue, disk);
        self.tell_queued(&s.username, &taken, &s.queue).await;
        taken
    }

    /// Tells the app that `taken`, found in the outbox, wait there, each after its
    /// neighbour in `queue`.
    async fn tell_queued(&self, sender: &Username, taken: &[Outgoing], queue: &[Outgoing]) {
        for o in taken {
            let after = queue
                .iter()
                .position(|q| q.client_id == o.client_id)
                .and_then(|i| i.checked_sub(1))
                .map(|i| queue[i].client_id.clone());
            self.emit(NetEvent::Queued {
                sender: sender.clone(),
                outgoing: o.clone(),
                after,
            })
            .await;
        }
    }
}

impl Session {
    /// Takes a new send for this identity into the queue (the keeper wrote it to the outbox
    /// before handing it on). A send for another identity stays in that identity's outbox on disk.
    fn enqueue(&mut self, sender: &Username, outgoing: Outgoing) -> bool {
        if sender.key() != self.username.key()
            || self.queue.iter().any(|o| o.client_id == outgoing.client_id)
        {
            return false;
        }
        self.queue.push(outgoing);
        true
    }

    /// The badge while the socket is down, from what the last HTTP probe found.
    fn down_link(&self) -> Link {
        if self.http_ok {
            Link::Fallback
        } else {
            self.unanswered_link()
        }
    }

    /// The badge while the socket is down and HTTP does not answer.
    fn unanswered_link(&self) -> Link {
        if self.failures >= OFFLINE_AFTER {
            Link::Offline
        } else if self.ever_live {
            Link::Reconnecting
        } else {
            Link::Connecting
        }
    }

    /// What to tell the app when an HTTP request is slow to answer while the socket is
    /// down.
    fn unanswered(&self) -> NetEvent {
        NetEvent::Link {
            link: self.unanswered_link(),
            retry_in: Some(self.retry_in()),
        }
    }

    /// The wait before the next socket attempt.
    fn retry_in(&self) -> Duration {
        self.retry_at.saturating_duration_since(Instant::now())
    }

    /// The server stored (or refused) this send: it leaves the queue, and the keeper
    /// records it done in the outbox.
    fn confirm(&mut self, client_id: &ClientId) {
        self.queue.retain(|o| &o.client_id != client_id);
        self.outbox.done(&self.username, client_id.clone());
    }

    /// Confirms every queued send that appears, as ours, among `messages`.
    fn confirm_seen(&mut self, messages: &[Message]) {
        let me = self.username.key();
        for m in messages {
            if let Some(cid) = &m.client_id
                && m.sender_username.key() == me
                && self.queue.iter().any(|o| &o.client_id == cid)
            {
                self.confirm(cid);
            }
        }
    }
}

/// Inserts into `queue` the entries of `disk` (the outbox file, in its order) that it lacks,
/// each just after the last entry before it in `disk` that the queue has, so the queue keeps
/// its own order and the newcomers take their place in the file's; returns the newcomers.
fn merge_in(queue: &mut Vec<Outgoing>, disk: Vec<Outgoing>) -> Vec<Outgoing> {
    let mut taken = Vec::new();
    let mut at = 0;
    for entry in disk {
        match queue.iter().position(|q| q.client_id == entry.client_id) {
            Some(i) => at = at.max(i + 1),
            None => {
                queue.insert(at, entry.clone());
                taken.push(entry);
                at += 1;
            }
        }
    }
    taken
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::tests::out;

    fn ids(q: &[Outgoing]) -> Vec<&str> {
        q.iter().map(|o| o.client_id.as_str()).collect()
    }

    #[test]
    fn merging_takes_newcomers_in_the_files_order_and_nothing_twice() {
        let mut queue = vec![out("a"), out("c"), out("x")];
        let taken = merge_in(
            &mut queue,
            vec![out("s1"), out("a"), out("b"), out("c"), out("d")],
        );
        assert_eq!(ids(&taken), ["s1", "b", "d"]);
        // "x" is no longer in the file (another process got it stored): it stays.
        assert_eq!(ids(&queue), ["s1", "a", "b", "c", "d", "x"]);
        assert!(merge_in(&mut queue, vec![out("a"), out("d")]).is_empty());
        assert_eq!(ids(&queue), ["s1", "a", "b", "c", "d", "x"]);
    }
}
