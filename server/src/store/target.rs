//! What `--db` names: a SQLite file (any path) or a PostgreSQL database (a `postgres://` or
//! `postgresql://` URL). Parsed once, at the command line's edge, so a bad URL is a usage
//! error before anything starts.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// How long connecting to PostgreSQL may take when the URL does not say
/// (`connect_timeout=`): a server out of reach fails a start or a write within this, rather
/// than hanging on the kernel's TCP timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The URL schemes that mean PostgreSQL; anything else is a file path.
const PG_SCHEMES: [&str; 2] = ["postgres://", "postgresql://"];

/// The database a server stores into.
#[derive(Debug, Clone)]
pub enum DbTarget {
    /// A SQLite file, created if missing.
    Sqlite(PathBuf),
    /// A PostgreSQL database, which must exist (its tables are created if missing).
    Postgres(PgTarget),
}

/// A parsed PostgreSQL URL. Displays without its password, so it can be logged.
#[derive(Clone)]
pub struct PgTarget {
    // Boxed: the config is ten times a path's size, and `DbTarget` is passed around by value.
    config: Box<tokio_postgres::Config>,
    shown: String,
}

/// Why a `--db` value is not usable.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// tokio-postgres could not parse the URL.
    #[error("invalid PostgreSQL URL {shown}: {source}")]
    Url {
        /// The URL without its password.
        shown: String,
        /// What the parser said.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The URL names no host (nor a socket directory).
    #[error("invalid PostgreSQL URL {0}: it names no host (postgres://USER@HOST[:PORT]/DB)")]
    NoHost(String),
}

impl DbTarget {
    /// A `postgres://` / `postgresql://` URL, else a file path.
    pub fn parse(s: &str) -> Result<DbTarget, TargetError> {
        if !PG_SCHEMES.iter().any(|p| s.starts_with(p)) {
            return Ok(DbTarget::Sqlite(PathBuf::from(s)));
        }
        let shown = without_password(s);
        let mut config =
            tokio_postgres::Config::from_str(s).map_err(|source| TargetError::Url {
                shown: shown.clone(),
                source,
            })?;
        if config.get_hosts().is_empty() {
            return Err(TargetError::NoHost(shown));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("natter-server");
        }
        Ok(DbTarget::Postgres(PgTarget {
            config: Box::new(config),
            shown,
        }))
    }
}

impl PgTarget {
    /// The connection settings.
    pub(super) fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }
}

impl fmt::Display for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the config's own Debug: it would print the password.
        f.debug_tuple("PgTarget").field(&self.shown).finish()
    }
}

impl fmt::Display for DbTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbTarget::Sqlite(path) => write!(f, "{}", path.display()),
            DbTarget::Postgres(pg) => fmt::Display::fmt(pg, f),
        }
    }
}

impl FromStr for DbTarget {
    type Err = TargetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DbTarget::parse(s)
    }
}

/// A file path, never a URL: tests and code that build a `Config` for a file.
impl From<PathBuf> for DbTarget {
    fn from(path: PathBuf) -> Self {
        DbTarget::Sqlite(path)
    }
}

/// A file path, never a URL.
impl From<&Path> for DbTarget {
    fn from(path: &Path) -> Self {
        DbTarget::Sqlite(path.to_owned())
    }
}

/// A file path, never a URL (use [`DbTarget::parse`] for text that may be one).
impl From<&str> for DbTarget {
    fn from(path: &str) -> Self {
        DbTarget::Sqlite(PathBuf::from(path))
    }
}

/// `s` with the password of its `user:password@` part replaced by `***`.
fn without_password(s: &str) -> String {
    let Some((scheme, rest)) = s.split_once("://") else {
        return s.to_owned();
    };
    // The authority ends at the first '/' or '?'; its userinfo at its last '@'.
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => s.to_owned(),
        },
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A path stays a path, whatever it looks like.
    #[test]
    fn paths_are_sqlite() {
        for p in [
            "natter.db",
            "/var/lib/natter/natter.db",
            "postgres.db",
            "x://y",
        ] {
            assert!(
                matches!(DbTarget::parse(p).unwrap(), DbTarget::Sqlite(_)),
                "{p}"
            );
        }
    }

    /// Both schemes are PostgreSQL, shown without the password.
    #[test]
    fn urls_are_postgres_and_hide_the_password() {
        let t = DbTarget::parse("postgres://natter:s3cret@db.example:5433/chat").unwrap();
        assert!(matches!(t, DbTarget::Postgres(_)));
        assert_eq!(t.to_string(), "postgres://natter:***@db.example:5433/chat");
        assert!(!format!("{t:?}").contains("s3cret"));
        let t = DbTarget::parse("postgresql://postgres@127.0.0.1/natter").unwrap();
        assert_eq!(t.to_string(), "postgresql://postgres@127.0.0.1/natter");
    }

    /// A URL that does not parse, or names no host, is refused with the reason.
    #[test]
    fn bad_urls_are_refused() {
        let e = DbTarget::parse("postgres://u:pw@h:notaport/db").unwrap_err();
        assert!(e.to_string().starts_with("invalid PostgreSQL URL"), "{e}");
        assert!(!e.to_string().contains("pw@"), "{e}");
        assert!(matches!(
            DbTarget::parse("postgres:///db").unwrap_err(),
            TargetError::NoHost(_)
        ));
    }
}
