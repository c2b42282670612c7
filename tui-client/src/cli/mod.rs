//! The command line: with no subcommand, the chat screen; otherwise one of the
//! subcommands for scripts. Plain output is one line per item and stays stable (scripts
//! parse it); `--json` prints one JSON object per line. Errors are one line on stderr and a
//! distinct exit code per kind, listed in [`EXIT_CODES`].
//!
//! This file: the flags (clap), dispatch, and `history`, `users`. Beside it:
//! - `exit.rs`: exit codes and [`Failure`], what every subcommand ends in when it fails;
//! - `account.rs`: `register`, `login`, and which stored token a subcommand uses;
//! - `send.rs`: `send`, through the account's outbox (earlier unsent messages first);
//! - `stdin.rs`: `send -`'s input, one line at a time and never further;
//! - `tail.rs`: following messages, waiting for the server, reconnecting;
//! - `output.rs`: the stable plain line of a message, JSON lines, a closed stdout;
//! - `usage.rs`: usage errors in one line, `completions` and `man`.

mod account;
mod exit;
mod output;
mod send;
mod stdin;
mod tail;
mod usage;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use clap_complete::Shell;
use natter_shared::{Message, MessageId, Username, validate};

use crate::chat::{self, ChatOptions};
use crate::net::ServerUrl;
use crate::net::http::{Http, Query};
use crate::net::tls::{self, Tls};
use crate::paths::Paths;

pub use exit::{
    EXIT_AUTH, EXIT_CODES, EXIT_FAILURE, EXIT_NETWORK, EXIT_OK, EXIT_REFUSED, EXIT_USAGE, Failure,
};
pub use output::plain_line;

use exit::Outcome;
use output::{json_line, out};

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
    /// PEM file of certificates to trust for an https:// server, besides the system's: the
    /// server's own if it is self-signed, or the CA that signed it.
    #[arg(long, global = true, env = "NATTER_CA_FILE", value_name = "PEM")]
    pub ca_file: Option<std::path::PathBuf>,
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
    ///
    /// Every message is written to the outbox (the one the chat screen uses) before it is
    /// sent, and leaves it once the server has stored or refused it; messages still waiting
    /// there from before (a killed send, a chat screen that quit offline) go out first, in
    /// order. Exits once every message is stored. If the server cannot be reached for
    /// --retry-for seconds, send stops trying, takes the rest of stdin into the outbox, and
    /// exits 4; the next send or chat screen delivers them, each exactly once.
    Send {
        /// Send directly to this user only.
        #[arg(long)]
        to: Option<String>,
        /// Print each stored message as JSON (earlier unsent ones delivered first too).
        #[arg(long)]
        json: bool,
        /// How long to keep trying a server that cannot be reached or asks to slow down,
        /// per message, and to wait for another send of the same account to finish.
        #[arg(long, value_name = "SECONDS", default_value_t = 60)]
        retry_for: u64,
        /// The text (words are joined by spaces), or `-` for stdin (blank lines are
        /// skipped); put `--` before text that starts with `-`.
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
    /// Print a completion script for SHELL on stdout.
    ///
    /// For example `natter completions bash >
    /// ~/.local/share/bash-completion/completions/natter`.
    Completions {
        /// The shell.
        shell: Shell,
    },
    /// Print the manual page, natter(1) or a subcommand's, as roff on stdout.
    ///
    /// `natter man | man -l -` reads it, `natter man > natter.1` keeps it. natter(1) refers
    /// to each subcommand's page as natter-SUBCOMMAND(1): `natter man send` prints
    /// natter-send(1).
    Man {
        /// The subcommand whose page to print.
        subcommand: Option<String>,
    },
}

/// The process entry point: parses the command line and runs it.
pub fn main() -> ExitCode {
    let outcome = match usage::parse() {
        Err(f) => Err(f),
        // Here, not in `run`: neither needs the runtime, the server or a valid --server.
        Ok(Cli {
            command: Some(Command::Completions { shell }),
            ..
        }) => usage::completions(shell),
        Ok(Cli {
            command: Some(Command::Man { subcommand }),
            ..
        }) => usage::man(subcommand.as_deref()),
        Ok(cli) => match tokio::runtime::Runtime::new() {
            Ok(runtime) => runtime.block_on(run(cli)),
            Err(e) => Err(Failure::new(
                EXIT_FAILURE,
                format!("cannot start the async runtime: {e}"),
            )),
        },
    };
    match outcome {
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
    // Names are checked here, with the rules the server applies, so that a chat screen that
    // could never log in (or send to `--to`) is refused instead of opened.
    if let Some(name) = &cli.name {
        check_name("--name", name)?;
    }
    if let (None, Some(to)) = (&cli.command, &cli.to) {
        check_name("--to", to)?;
    }
    let tls = Tls::new(&server, cli.ca_file.as_deref())
        .map_err(|e| Failure::new(EXIT_USAGE, e.to_string()))?;
    let cleartext = tls::cleartext_warning(&server);
    if let (Some(warning), Some(_)) = (&cleartext, &cli.command) {
        // The chat screen shows it on its status line instead, where it stays readable.
        eprintln!("natter: {warning}");
    }
    let paths = Paths::from_env();
    let ctx = Ctx {
        http: Http::new(server.clone(), &tls),
        server,
        tls,
        paths,
        name: cli.name.clone(),
    };
    match cli.command {
        None => chat::run(ChatOptions {
            server: ctx.server.clone(),
            tls: ctx.tls.clone(),
            warning: cleartext,
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
        Some(Command::Send {
            to,
            json,
            retry_for,
            text,
        }) => {
            ctx.send(send::SendArgs {
                to: to.as_deref(),
                json,
                words: &text,
                retry_for: Duration::from_secs(retry_for),
            })
            .await
        }
        Some(Command::Tail { after, json }) => ctx.tail(after.map(MessageId), json).await,
        Some(Command::History { limit, with, json }) => {
            ctx.history(limit, with.as_deref(), json).await
        }
        Some(Command::Users { json }) => ctx.users(json).await,
        Some(Command::Completions { shell }) => usage::completions(shell),
        Some(Command::Man { subcommand }) => usage::man(subcommand.as_deref()),
    }
}

struct Ctx {
    server: ServerUrl,
    tls: Tls,
    http: Http,
    paths: Paths,
    name: Option<String>,
}

/// A usage failure unless `name` is a valid username: `--name "x y": username may only …`.
fn check_name(flag: &str, name: &str) -> Result<(), Failure> {
    validate::validate_username(name)
        .map_err(|e| Failure::new(EXIT_USAGE, format!("{flag} {name:?}: {e}")))
}

fn parse_name(name: &str) -> Result<Username, Failure> {
    Username::parse(name).map_err(|e| Failure::new(EXIT_USAGE, format!("{name:?}: {e}")))
}

impl Ctx {
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
