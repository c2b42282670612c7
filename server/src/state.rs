//! `AppState`: what every handler and connection shares, built once by `Server::open`.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Authenticator;
use crate::bus::{Bus, Feed};
use crate::config::Config;
use crate::hub::Hub;
use crate::limits::ConnectionLimits;
use crate::rate::RateLimiter;
use crate::store::Store;

/// Shared by every request and connection.
pub struct AppState {
    /// Settings.
    pub config: Config,
    /// The database.
    pub store: Store,
    /// Who is connected; fan-out.
    pub hub: Arc<Hub>,
    /// Every committed message reaches the hub through here, once, in id order.
    pub feed: Arc<Feed>,
    /// The other instances, when there are any (Redis).
    pub bus: Arc<Bus>,
    /// Bearer tokens → users.
    pub auth: Authenticator,
    /// Per-user send rate.
    pub limiter: RateLimiter,
    /// Failed logins, per case-folded name and client address: a stranger guessing runs
    /// out of attempts without locking the owner out.
    pub login_limiter: RateLimiter<(String, std::net::IpAddr)>,
    /// Failed logins per case-folded name from all addresses together: a looser cap that
    /// bounds guessing spread over many addresses.
    pub login_name_limiter: RateLimiter<String>,
    /// Failed logins per client address for all names together: a looser cap that keeps one
    /// address from trying fresh names (each a slow hash) without end.
    pub login_ip_limiter: RateLimiter<std::net::IpAddr>,
    /// Registrations per client address.
    pub register_limiter: RateLimiter<std::net::IpAddr>,
    /// Metric handles for the hot paths.
    pub metrics: crate::metrics::Metrics,
    /// Open connections: WebSockets in all and per user, plain HTTP.
    pub limits: ConnectionLimits,
    /// Cancelled when the server starts shutting down.
    pub shutdown: CancellationToken,
    /// Every task the server spawns: each accepted connection's (plain or TLS, including
    /// those answered at the HTTP cap), each WebSocket's, and the Redis bus's. Shutdown
    /// closes it and waits up to `shutdown_grace` for them all, so WebSockets can send their
    /// close frames.
    pub tasks: TaskTracker,
}

impl AppState {
    /// The checks every send passes before it is queued for storage, whichever transport
    /// it came by: the claimed sender must be the token's user, and the user must be within
    /// their send rate.
    pub fn admit(
        &self,
        user: &crate::store::User,
        message: &natter_shared::SendMessage,
    ) -> Result<(), crate::error::ServerError> {
        if let Some(claimed) = &message.sender_username
            && !claimed.eq_ignore_ascii_case(user.username.as_str())
        {
            return Err(crate::error::ServerError::Forbidden(format!(
                "you are {}; you cannot send as {claimed:?}",
                user.username
            )));
        }
        if !self.limiter.allow(user.id) {
            return Err(crate::error::ServerError::RateLimited);
        }
        Ok(())
    }
}
