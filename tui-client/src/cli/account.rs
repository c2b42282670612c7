//! `register` and `login` (storing what they get in `credentials.toml`), reading a
//! password, and which token the other subcommands use (`NATTER_TOKEN`, `--name`, or the
//! only stored account).

use std::io::{BufRead, Write};

use natter_shared::{Username, validate};

use super::exit::{EXIT_AUTH, EXIT_FAILURE, EXIT_USAGE, Failure, Outcome};
use super::output::out;
use super::{Ctx, parse_name};
use crate::credentials::{self, Account};
use crate::error::ApiError;

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

/// Who a subcommand acts as.
pub(super) struct Identity {
    /// The bearer token.
    pub(super) token: String,
    /// The account's name, when known (not for a `NATTER_TOKEN` no stored account has).
    pub(super) username: Option<Username>,
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

    /// The token to use; see [`Ctx::identity`].
    pub(super) fn token(&self) -> Result<String, Failure> {
        self.identity().map(|i| i.token)
    }

    /// Who the subcommand acts as: `NATTER_TOKEN` (with the name of the stored account that
    /// has that token, if one has), else the stored account named by `--name`, else the
    /// only account stored for this server.
    pub(super) fn identity(&self) -> Result<Identity, Failure> {
        let server = self.server.http_base();
        let path = self.credentials_path();
        if let Some(token) = std::env::var("NATTER_TOKEN").ok().filter(|t| !t.is_empty()) {
            // Only to name the outbox: a file that cannot be read does not stop a token
            // given outright.
            let username = credentials::accounts(&path, server)
                .ok()
                .and_then(|all| all.into_iter().find(|a| a.token == token))
                .and_then(|a| Username::parse(&a.username).ok());
            return Ok(Identity { token, username });
        }
        let read_err = |e: anyhow::Error| Failure::new(EXIT_FAILURE, format!("{e:#}"));
        let account = if let Some(name) = &self.name {
            credentials::find(&path, server, name)
                .map_err(read_err)?
                .ok_or_else(|| {
                    Failure::new(
                        EXIT_AUTH,
                        format!(
                            "no stored credentials for {name} on {server}; run `natter register {name}` or `natter login {name}`"
                        ),
                    )
                })?
        } else {
            let mut accounts = credentials::accounts(&path, server).map_err(read_err)?;
            match accounts.len() {
                1 => accounts.remove(0),
                0 => {
                    return Err(Failure::new(
                        EXIT_AUTH,
                        format!(
                            "no stored credentials for {server}; run `natter register NAME` or set NATTER_TOKEN"
                        ),
                    ));
                }
                _ => {
                    return Err(Failure::new(
                        EXIT_USAGE,
                        format!(
                            "several accounts are stored for {server} ({}); pick one with --name",
                            accounts
                                .iter()
                                .map(|a| a.username.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
        };
        let username = Username::parse(&account.username).map_err(|e| {
            Failure::new(
                EXIT_FAILURE,
                format!(
                    "{}: stored username {:?}: {e}",
                    path.display(),
                    account.username
                ),
            )
        })?;
        Ok(Identity {
            token: account.token,
            username: Some(username),
        })
    }

    /// Fails, before the server is asked for anything, when the credentials file cannot be
    /// read: `save` would refuse to replace it, and a registration whose generated password
    /// cannot be stored is an account nobody can log in to.
    fn check_credentials_readable(&self) -> Outcome {
        credentials::accounts(&self.credentials_path(), self.server.http_base())
            .map(|_| ())
            .map_err(|e| Failure::new(EXIT_FAILURE, format!("{e:#}")))
    }

    pub(super) async fn register(&self, name: &str, password_stdin: bool) -> Outcome {
        let username = parse_name(name)?;
        self.check_credentials_readable()?;
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

    pub(super) async fn login(&self, name: &str, password_stdin: bool) -> Outcome {
        let username = parse_name(name)?;
        self.check_credentials_readable()?;
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
}
