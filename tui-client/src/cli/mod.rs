//! The command line: with no subcommand, the chat screen; otherwise one of the
//! subcommands for scripts. Plain output is one line per item and stays stable (scripts
//! parse it); `--json` prints one JSON object per line. Errors are one line on stderr and a
//! distinct exit code per kind, listed in [`EXIT_CODES`].

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use natter_shared::{ClientId, Message, MessageId, ServerFrame, Timestamp, Username, validate};
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::chat::{self, ChatOptions};
use crate::credentials::{self, Account};
use crate::error::ApiError;
use crate::net::http::{Http, Query};
use crate::net::ws::{self, ConnectError, Incoming};
use crate::net::{ServerUrl, backoff, random_u64};
use crate::outbox::Outgoing;
use crate::paths::Paths;

/// Success.
pub const EXIT_OK: u8 = 0;
/// Any other failure.
pub const EXIT_FAILURE: u8 = 1;
/// Bad command line or arguments (also clap's own code).
pub const EXIT_USAGE: u8 = 2;
/// No credentials, wrong password, name taken, token refused.
pub const EXIT_AUTH: u8 = 3;
/// The server cannot be reached.
pub const EXIT_NETWORK: u8 = 4;
/// The server refused the request (invalid text, unknown receiver, …).
pub const EXIT_REFUSED: u8 = 5;

/// The exit codes, as `--help` shows them.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  other failure
  2  usage error (bad flags or arguments)
  3  authentication (no stored credentials, wrong password, name taken, token refused)
  4  network (cannot reach the server; tail waits for it instead)
  5  refused by the server (invalid message, unknown receiver, ...)

Environment:
  NATTER_SERVER  server URL (like --server)
  NATTER_TOKEN   bearer token; overrides stored credentials
  NO_COLOR       no colours on the chat screen
  XDG_CONFIG_HOME, XDG_STATE_HOME  where credentials.toml and the outbox live";

/// natter: terminal chat. Without a subcommand, opens the chat screen.
#[derive(Debug, Parser)]
#[command(name = "natter", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// Server URL.
    #[arg(
        long,
        global = true,
        env = "NATTER_SERVER",
        default_value = "http://127.0.0.1:8000"
    )]
    pub server: String,
    /// Your name: picks the stored credentials (the chat screen logs in or registers it).
    #[arg(long, global = true)]
    pub name: Option<String>,
    /// Chat screen: prefill "Send to".
    #[arg(long)]
    pub to: Option<String>,
    /// What to do; none opens the chat screen.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an account and store its credentials (a password is generated unless given).
    Register {
        /// The name to register.
        name: String,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Log in to an existing account and store its credentials.
    Login {
        /// The account.
        name: String,
        /// Read the password from the first line of stdin (else it is asked for).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Send a message; with `-`, each line of stdin as one message, in order.
    Send {
        /// Send directly to this user only.
        #[arg(long)]
        to: Option<String>,
        /// Print each stored message as JSON.
        #[arg(long)]
        json: bool,
        /// The text (words are joined by spaces), or `-` for stdin; put `--` before text
        /// that starts with `-`.
        #[arg(required = true)]
        text: Vec<String>,
    },
    /// Print messages as they arrive; waits for the server, reconnects and resumes by itself.
    Tail {
        /// Start after this message id (default: only new messages).
        #[arg(long)]
        after: Option<i64>,
        /// One JSON object per message.
        #[arg(long)]
        json: bool,
    },
    /// Print recent messages, oldest first.
    History {
        /// How many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Only the direct messages between you and this user.
        #[arg(long)]
        with: Option<String>,
        /// One JSON object per message.
        #[arg(long)]
        json: bool,
    },
    /// List users and whether they are online.
    Users {
        /// One JSON object per user.
        #[arg(long)]
        json: bool,
    },
}

/// A failure with its exit code.
#[derive(Debug)]
pub struct Failure {
    /// The process exit code.
    pub code: u8,
    /// One line for stderr.
    pub message: String,
}

impl Failure {
    fn new(code: u8, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        let code = if e.is_network() {
            EXIT_NETWORK
        } else if e.is_unauthorized() {
            EXIT_AUTH
        } else if matches!(e, ApiError::Server { .. }) {
            EXIT_REFUSED
        } else {
            EXIT_FAILURE
        };
        Failure::new(code, e.to_string())
    }
}

type Outcome = Result<(), Failure>;

/// The process entry point: parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("natter: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(f) => {
            eprintln!("natter: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Outcome {
    let server = ServerUrl::parse(&cli.server).map_err(|e| Failure::new(EXIT_USAGE, e))?;
    let paths = Paths::from_env();
    let ctx = Ctx {
        http: Http::new(server.clone()),
        server,
        paths,
        name: cli.name.clone(),
    };
    match cli.command {
        None => chat::run(ChatOptions {
            server: ctx.server.clone(),
            name: cli.name,
            to: cli.to,
            paths: ctx.paths.clone(),
        })
        .await
        .map_err(|e| Failure::new(EXIT_FAILURE, format!("{e:#}"))),
        Some(Command::Register {
            name,
            password_stdin,
        }) => ctx.register(&name, password_stdin).await,
        Some(Command::Login {
            name,
            password_stdin,
        }) => ctx.login(&name, password_stdin).await,
        Some(Command::Send { to, json, text }) => ctx.send(to.as_deref(), json, &text).await,
        Some(Command::Tail { after, json }) => ctx.tail(after.map(MessageId), json).await,
        Some(Command::History { limit, with, json }) => {
            ctx.history(limit, with.as_deref(), json).await
        }
        Some(Command::Users { json }) => ctx.users(json).await,
    }
}

struct Ctx {
    server: ServerUrl,
    http: Http,
    paths: Paths,
    name: Option<String>,
}

fn parse_name(name: &str) -> Result<Username, Failure> {
    Username::parse(name).map_err(|e| Failure::new(EXIT_USAGE, format!("{name:?}: {e}")))
}

/// One line of a message, as `tail` and `history` print it:
/// `ID CREATED_AT SENDER: TEXT` or `ID CREATED_AT SENDER -> RECEIVER: TEXT`, newlines in
/// the text written as `\n` so that one message is one line.
pub fn plain_line(m: &Message) -> String {
    let text = m.text.replace('\\', "\\\\").replace('\n', "\\n");
    match &m.receiver_username {
        Some(r) => format!(
            "{} {} {} -> {r}: {text}",
            m.id, m.created_at, m.sender_username
        ),
        None => format!("{} {} {}: {text}", m.id, m.created_at, m.sender_username),
    }
}

/// Writes one line to stdout and flushes; `Err` when stdout is closed (a pipe's reader
/// went away), which callers treat as a clean end.
fn out(line: &str) -> Result<(), ()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(|_| ())
}

fn json_line<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Whether stdout is a pipe whose reader has gone (so `tail` can stop even when no message
/// arrives to fail a write).
fn stdout_closed() -> bool {
    use rustix::event::{PollFd, PollFlags, poll};
    let stdout = std::io::stdout();
    let mut fds = [PollFd::new(&stdout, PollFlags::empty())];
    let zero = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match poll(&mut fds, Some(&zero)) {
        Ok(_) => fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP),
        Err(_) => false,
    }
}

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

fn read_password_stdin() -> Result<String, Failure> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::new(EXIT_FAILURE, format!("reading the password: {e}")))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// Asks for a password on the terminal without echo.
fn prompt_password(name: &str) -> Result<String, Failure> {
    use rustix::termios::{LocalModes, OptionalActions, isatty, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    if !isatty(&stdin) {
        return Err(Failure::new(
            EXIT_USAGE,
            "no terminal to ask for the password on; use --password-stdin",
        ));
    }
    eprint!("password for {name}: ");
    let _ = std::io::stderr().flush();
    let saved = tcgetattr(&stdin).ok();
    if let Some(saved) = &saved {
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        let _ = tcsetattr(&stdin, OptionalActions::Now, &quiet);
    }
    let result = read_password_stdin();
    if let Some(saved) = &saved {
        let _ = tcsetattr(&stdin, OptionalActions::Now, saved);
    }
    eprintln!();
    result
}

impl Ctx {
    fn credentials_path(&self) -> std::path::PathBuf {
        self.paths.credentials()
    }

    fn store(&self, username: &Username, token: &str, password: &str) -> Outcome {
        credentials::save(
            &self.credentials_path(),
            &Account {
                server: self.server.http_base().to_owned(),
                username: username.to_string(),
                token: token.to_owned(),
                password: Some(password.to_owned()),
            },
        )
        .map_err(|e| Failure::new(EXIT_FAILURE, format!("storing credentials: {e:#}")))
    }

    /// The token to use: `NATTER_TOKEN`, else the stored account named by `--name`, else
    /// the only account stored for this server.
    fn token(&self) -> Result<String, Failure> {
        if let Some(t) = std::env::var("NATTER_TOKEN").ok().filter(|t| !t.is_empty()) {
            return Ok(t);
        }
        let server = self.server.http_base();
        let path = self.credentials_path();
        let read_err = |e: anyhow::Error| Failure::new(EXIT_FAILURE, format!("{e:#}"));
        if let Some(name) = &self.name {
            return credentials::find(&path, server, name)
                .map_err(read_err)?
                .map(|a| a.token)
                .ok_or_else(|| {
                    Failure::new(
                        EXIT_AUTH,
                        format!(
                            "no stored credentials for {name} on {server}; run `natter register {name}` or `natter login {name}`"
                        ),
                    )
                });
        }
        let accounts = credentials::accounts(&path, server).map_err(read_err)?;
        match accounts.as_slice() {
            [only] => Ok(only.token.clone()),
            [] => Err(Failure::new(
                EXIT_AUTH,
                format!(
                    "no stored credentials for {server}; run `natter register NAME` or set NATTER_TOKEN"
                ),
            )),
            several => Err(Failure::new(
                EXIT_USAGE,
                format!(
                    "several accounts are stored for {server} ({}); pick one with --name",
                    several
                        .iter()
                        .map(|a| a.username.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    async fn register(&self, name: &str, password_stdin: bool) -> Outcome {
        let username = parse_name(name)?;
        let password = if password_stdin {
            read_password_stdin()?
        } else {
            credentials::random_string(24)
        };
        validate::validate_password(&password)
            .map_err(|e| Failure::new(EXIT_USAGE, e.to_string()))?;
        let resp = match self.http.register(username.as_str(), &password).await {
            Ok(r) => r,
            Err(e @ ApiError::Server { status: 409, .. }) => {
                return Err(Failure::new(
                    EXIT_AUTH,
                    format!("{e}; if it is yours, run `natter login {username}`"),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        self.store(&resp.username, &resp.token, &password)?;
        let _ = out(&format!("registered {}", resp.username));
        Ok(())
    }

    async fn login(&self, name: &str, password_stdin: bool) -> Outcome {
        let username = parse_name(name)?;
        let password = if password_stdin {
            read_password_stdin()?
        } else {
            prompt_password(name)?
        };
        let resp = self.http.login(username.as_str(), &password).await?;
        self.store(&resp.username, &resp.token, &password)?;
        let _ = out(&format!("logged in as {}", resp.username));
        Ok(())
    }

    async fn send(&self, to: Option<&str>, json: bool, words: &[String]) -> Outcome {
        let receiver = to.map(parse_name).transpose()?;
        let texts: Vec<String> = if words == ["-"] {
            std::io::stdin()
                .lock()
                .lines()
                .map(|l| l.map_err(|e| Failure::new(EXIT_FAILURE, format!("reading stdin: {e}"))))
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .filter(|l| !l.trim().is_empty())
                .collect()
        } else {
            vec![words.join(" ")]
        };
        for text in &texts {
            validate::validate_text(text, validate::MAX_TEXT_CHARS)
                .map_err(|e| Failure::new(EXIT_USAGE, e.to_string()))?;
        }
        let token = self.token()?;
        let prefix = credentials::random_string(12);
        for (i, text) in texts.into_iter().enumerate() {
            let client_id = ClientId::parse(&format!("{prefix}-{i}"))
                .map_err(|e| Failure::new(EXIT_FAILURE, e.to_string()))?;
            let outgoing = Outgoing {
                client_id,
                receiver: receiver.clone(),
                text,
            };
            let message = self.post_with_retry(&token, &outgoing).await?;
            if json {
                let _ = out(&json_line(&message));
            }
        }
        Ok(())
    }

    /// POSTs with the same client_id until it is stored: network failures and rate limits
    /// are retried with backoff for up to a minute, and the server stores it once however
    /// often it arrives.
    async fn post_with_retry(&self, token: &str, outgoing: &Outgoing) -> Result<Message, Failure> {
        let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut attempt = 0;
        loop {
            match self.http.post_message(token, outgoing).await {
                Ok(m) => return Ok(m),
                Err(e)
                    if (e.is_network() || e.is_rate_limited())
                        && tokio::time::Instant::now() < give_up =>
                {
                    tokio::time::sleep(backoff(attempt, random_u64())).await;
                    attempt += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn tail(&self, after: Option<MessageId>, json: bool) -> Outcome {
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
            let connecting = ws::connect(&self.server, &token, Some(after));
            let socket = tokio::select! {
                s = connecting => s,
                () = stop.stopped() => return Ok(()),
            };
            match socket {
                Ok(mut socket) => {
                    attempt = 0;
                    loop {
                        let incoming = tokio::select! {
                            i = ws::next(&mut socket) => i,
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

    async fn history(&self, limit: usize, with: Option<&str>, json: bool) -> Outcome {
        validate::validate_history_limit(limit)
            .map_err(|e| Failure::new(EXIT_USAGE, e.to_string()))?;
        let with = with.map(parse_name).transpose()?;
        let token = self.token()?;
        let messages = match &with {
            None => {
                self.http
                    .messages(
                        &token,
                        Query {
                            limit: Some(limit),
                            ..Query::default()
                        },
                    )
                    .await?
            }
            Some(other) => {
                // Every direct message we can see involves us; those that also involve
                // `other` are the conversation with them. Walk back page by page.
                let key = other.key();
                let mut found: Vec<Message> = Vec::new();
                let mut before = None;
                loop {
                    let page = self
                        .http
                        .messages(
                            &token,
                            Query {
                                before,
                                limit: Some(validate::MAX_HISTORY_LIMIT),
                                ..Query::default()
                            },
                        )
                        .await?;
                    let Some(first) = page.first() else { break };
                    before = Some(first.id);
                    let full = page.len() >= validate::MAX_HISTORY_LIMIT;
                    let mut matching: Vec<Message> = page
                        .into_iter()
                        .filter(|m| {
                            m.receiver_username
                                .as_ref()
                                .is_some_and(|r| r.key() == key || m.sender_username.key() == key)
                        })
                        .collect();
                    matching.append(&mut found);
                    found = matching;
                    if found.len() >= limit || !full {
                        break;
                    }
                }
                let skip = found.len().saturating_sub(limit);
                found.split_off(skip)
            }
        };
        for m in &messages {
            let line = if json { json_line(m) } else { plain_line(m) };
            if out(&line).is_err() {
                break;
            }
        }
        Ok(())
    }

    async fn users(&self, json: bool) -> Outcome {
        let token = self.token()?;
        for u in self.http.users(&token).await? {
            let line = if json {
                json_line(&u)
            } else {
                format!(
                    "{} {}",
                    u.username,
                    if u.online { "online" } else { "offline" }
                )
            };
            if out(&line).is_err() {
                break;
            }
        }
        Ok(())
    }
}
