//! Who the actor is: a stored token, else a login with the stored password, else
//! registering the name with a generated password; if the name is taken and no password is
//! known, the app is asked for one. A token the server later refuses is renewed the same
//! way.

use natter_shared::{ErrorCode, Username};
use tokio::time::{Instant, sleep_until};

use super::{Actor, Command, Next, OFFLINE_AFTER, Session, State};
use crate::credentials::{self, Account};
use crate::error::{ApiError, Disposition, Retry};
use crate::msg::{Link, NetEvent};
use crate::net::{backoff, random_u64};

/// What an attempt to authenticate produced.
enum Auth {
    Ok {
        username: Username,
        token: String,
        registered: bool,
        /// Why the credentials could not be stored, shown after the login notice.
        unsaved: Option<String>,
    },
    NeedPassword(String),
    Network(String),
    Failed(String),
}

impl Actor {
    /// [`State::Authenticating`]: tries until a token is held ([`State::Connecting`]), the
    /// user must type a password ([`State::AwaitingPassword`]) or another command ends this
    /// identity. A server that cannot be reached is retried with backoff.
    pub(super) async fn authenticate(
        &mut self,
        s: &mut Session,
        password: Option<String>,
    ) -> State {
        let mut attempt = 0;
        let mut password = password;
        loop {
            match self.try_auth(&s.username, password.take(), false).await {
                Auth::Ok {
                    username,
                    token,
                    registered,
                    unsaved,
                } => {
                    s.username = username.clone();
                    s.token = token;
                    self.emit(NetEvent::LoggedIn {
                        username,
                        registered,
                    })
                    .await;
                    if let Some(why) = unsaved {
                        self.emit(NetEvent::Error(why)).await;
                    }
                    return State::Connecting;
                }
                Auth::NeedPassword(reason) => return self.ask_password(s, reason).await,
                Auth::Failed(reason) => {
                    self.link(Link::Idle, None).await;
                    self.emit(NetEvent::Error(reason)).await;
                    return State::AwaitingPassword;
                }
                Auth::Network(reason) => {
                    let delay = backoff(attempt, random_u64());
                    attempt += 1;
                    let link = if attempt >= OFFLINE_AFTER {
                        Link::Offline
                    } else {
                        Link::Connecting
                    };
                    self.link(link, Some(delay)).await;
                    self.emit(NetEvent::Error(reason)).await;
                    let deadline = Instant::now() + delay;
                    loop {
                        tokio::select! {
                            () = sleep_until(deadline) => break,
                            cmd = self.cmds.recv() => {
                                if let Command::End(next) = self.on_command(s, cmd) {
                                    return State::Ended(next);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Tells the app this name needs a password, and waits for it.
    async fn ask_password(&mut self, s: &Session, reason: String) -> State {
        self.link(Link::Idle, None).await;
        self.emit(NetEvent::PasswordNeeded {
            username: s.username.clone(),
            reason,
        })
        .await;
        State::AwaitingPassword
    }

    /// [`State::AwaitingPassword`]: waits for the user to type a password for this name
    /// (or pick another).
    pub(super) async fn wait_for_password(&mut self, s: &mut Session) -> State {
        loop {
            let cmd = self.cmds.recv().await;
            match self.on_command(s, cmd) {
                // The password asked for: this identity goes on with it.
                Command::End(Next::Login(username, Some(p)))
                    if username.key() == s.username.key() =>
                {
                    return State::Authenticating(Some(p));
                }
                Command::End(next) => return State::Ended(next),
                Command::Queued(_) | Command::Nothing => {}
            }
        }
    }

    /// One authentication attempt. With `renew`, the stored token is known to be bad.
    async fn try_auth(&self, username: &Username, typed: Option<String>, renew: bool) -> Auth {
        let server = self.config.server.http_base().to_owned();
        let path = self.config.paths.credentials();
        let stored = match credentials::find(&path, &server, username.as_str()) {
            Ok(found) => found,
            // A file we cannot read may hold this account's only password: never register
            // over it with a generated one (that password could not be stored). Ask instead.
            Err(e) if typed.is_none() => return Auth::NeedPassword(format!("{e:#}")),
            Err(_) => None,
        };
        if !renew
            && typed.is_none()
            && let Some(acct) = &stored
            && let Ok(name) = Username::parse(&acct.username)
        {
            return Auth::Ok {
                username: name,
                token: acct.token.clone(),
                registered: false,
                unsaved: None,
            };
        }
        let (password, known) = match typed.or_else(|| stored.and_then(|a| a.password)) {
            Some(p) => (p, true),
            None => (generate_password(), false),
        };
        let save = |resp: &natter_shared::protocol::AuthResponse| {
            credentials::save(
                &path,
                &Account {
                    server: server.clone(),
                    username: resp.username.to_string(),
                    token: resp.token.clone(),
                    password: Some(password.clone()),
                },
            )
            .err()
            .map(|e| format!("logged in, but the credentials were not stored: {e:#}"))
        };
        if known {
            match self.http.login(username.as_str(), &password).await {
                Ok(resp) => {
                    return Auth::Ok {
                        unsaved: save(&resp),
                        username: resp.username,
                        token: resp.token,
                        registered: false,
                    };
                }
                Err(e) => match e.disposition() {
                    Disposition::Retry(Retry::Unreachable | Retry::Untrusted) => {
                        return Auth::Network(e.to_string());
                    }
                    // Maybe the server's database is new: try to register.
                    Disposition::Renew => {}
                    // A login throttled (429) is shown, and waits for the user like a
                    // refusal: retried on its own it would only be throttled longer.
                    Disposition::Retry(Retry::RateLimited) | Disposition::Refused => {
                        return Auth::Failed(e.to_string());
                    }
                },
            }
        }
        match self.http.register(username.as_str(), &password).await {
            Ok(resp) => Auth::Ok {
                unsaved: save(&resp),
                username: resp.username,
                token: resp.token,
                registered: true,
            },
            // An untrusted certificate is waited out like a server that is down (the
            // status line says what to do): it may be fixed on the server meanwhile.
            Err(e)
                if matches!(
                    e.disposition(),
                    Disposition::Retry(Retry::Unreachable | Retry::Untrusted)
                ) =>
            {
                Auth::Network(e.to_string())
            }
            Err(e)
                if e.code() == Some(ErrorCode::UsernameTaken)
                    || matches!(e, ApiError::Server { status: 409, .. }) =>
            {
                Auth::NeedPassword(if known {
                    "wrong password".into()
                } else {
                    format!("the name {username} is taken")
                })
            }
            Err(e) => Auth::Failed(format!("cannot register {username}: {e}")),
        }
    }

    /// [`State::Renewing`]: the token was refused; log in again with the stored password,
    /// or ask. A server that cannot be reached now is left to the next socket attempt.
    pub(super) async fn renew(&mut self, s: &mut Session) -> State {
        match self.try_auth(&s.username, None, true).await {
            Auth::Ok { token, unsaved, .. } => {
                s.token = token;
                if let Some(why) = unsaved {
                    self.emit(NetEvent::Error(why)).await;
                }
                State::Connecting
            }
            Auth::Network(_) => State::Connecting,
            Auth::NeedPassword(reason) | Auth::Failed(reason) => self.ask_password(s, reason).await,
        }
    }
}

/// A random password for auto-registration: 24 characters from a 62-letter alphabet
/// (about 143 bits).
pub fn generate_password() -> String {
    crate::credentials::random_string(24)
}
