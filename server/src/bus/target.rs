//! What `--bus`, `--bus-prefix` and `--instance-name` name, checked: the Redis URL (shown
//! in logs without its password), the key prefix, the instance name.

/// What `--bus` names: a Redis server, and the prefix of every key and channel natter uses
/// on it (Redis pub/sub ignores the database number, so the prefix is what keeps two
/// deployments — or two test runs — on one Redis apart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusTarget {
    /// `redis://HOST:PORT[/DB]`.
    pub url: String,
    /// Keys and channels start with `PREFIX:`.
    pub prefix: String,
}

/// Why a `--bus` value, prefix or instance name is refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BusArgError(String);

impl BusTarget {
    /// Checks a `redis://` URL and a prefix.
    pub fn parse(url: &str, prefix: &str) -> Result<BusTarget, BusArgError> {
        if !url.starts_with("redis://") {
            return Err(BusArgError(format!(
                "{url:?} is not a redis:// URL (expected redis://HOST:PORT[/DB])"
            )));
        }
        ::redis::Client::open(url)
            .map_err(|e| BusArgError(format!("{url:?} is not a usable Redis URL: {e}")))?;
        if !is_name(prefix) {
            return Err(BusArgError(format!(
                "bus prefix {prefix:?} must be 1 to 64 letters, digits, '.', '_', '-' or ':'"
            )));
        }
        Ok(BusTarget {
            url: url.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

/// The URL as logs show it: a password in it becomes `***`.
impl std::fmt::Display for BusTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rest = self.url.strip_prefix("redis://").unwrap_or(&self.url);
        match rest.rsplit_once('@') {
            None => write!(f, "redis://{rest}"),
            Some((userinfo, host)) => {
                let user = userinfo.split_once(':').map_or("", |(u, _)| u);
                write!(f, "redis://{user}:***@{host}")
            }
        }
    }
}

/// Checks a `--bus` URL on its own (the prefix is checked with it in [`BusTarget::parse`]).
pub fn check_bus_url(url: &str) -> Result<String, BusArgError> {
    BusTarget::parse(url, "natter").map(|t| t.url)
}

/// Checks a `--bus-prefix`.
pub fn check_bus_prefix(prefix: &str) -> Result<String, BusArgError> {
    BusTarget::parse("redis://127.0.0.1", prefix).map(|t| t.prefix)
}

/// Checks an instance name: what logs, presence bookkeeping and metrics call this process.
pub fn check_instance_name(name: &str) -> Result<(), BusArgError> {
    if is_name(name) {
        Ok(())
    } else {
        Err(BusArgError(format!(
            "instance name {name:?} must be 1 to 64 letters, digits, '.', '_', '-' or ':'"
        )))
    }
}

/// This machine's name, for the default instance name (`HOST:PORT`); `localhost` if the
/// system will not say.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| is_name(h))
        .unwrap_or_else(|| "localhost".to_owned())
}

fn is_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b))
}
