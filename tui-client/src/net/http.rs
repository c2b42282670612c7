//! The REST half of the protocol, with reqwest: auth, history, posting, users. Used by the
//! network task (fallback and outbox flushing) and by every subcommand.

use std::time::Duration;

use natter_shared::protocol::{AuthResponse, Credentials, ErrorResponse, UserStatus};
use natter_shared::{Message, MessageId};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::net::ServerUrl;
use crate::net::tls::{self, Tls};
use crate::outbox::Outgoing;
use rustls::ClientConfig;

/// How long one request may take before it counts as a network failure.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long establishing the TCP connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Which messages to ask `GET /api/chat/messages/` for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Query {
    /// Only ids above this.
    pub after: Option<MessageId>,
    /// Only ids below this.
    pub before: Option<MessageId>,
    /// At most this many (server default 100, max 1000).
    pub limit: Option<usize>,
}

/// A REST client for one server.
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
    server: ServerUrl,
}

impl Http {
    /// A client for `server`, trusting what `tls` trusts.
    pub fn new(server: ServerUrl, tls: &Tls) -> Self {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            // Our own rustls settings, the socket's too: the same roots and --ca-file.
            .tls_backend_preconfigured(ClientConfig::clone(&tls.client_config()))
            .build()
            // Building fails only on a TLS backend it cannot use, which ours is not; the
            // default client (on the provider `Tls::new` installed) lacks only the timeouts.
            .unwrap_or_default();
        Http { client, server }
    }

    /// The server this client talks to.
    pub fn server(&self) -> &ServerUrl {
        &self.server
    }

    async fn call<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T, ApiError> {
        let network = |e: reqwest::Error| match tls::refusal(&e) {
            Some(why) => ApiError::Untrusted {
                server: self.server.to_string(),
                why,
            },
            None => ApiError::Network {
                server: self.server.to_string(),
                detail: short_error(&e),
            },
        };
        let resp = req.send().await.map_err(network)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(network)?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| ApiError::Decode(e.to_string()));
        }
        let (code, message) = match serde_json::from_slice::<ErrorResponse>(&bytes) {
            Ok(body) => (Some(body.error.code), body.error.message),
            Err(_) => (None, format!("server answered {status}")),
        };
        Err(ApiError::Server {
            status: status.as_u16(),
            code,
            message,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.http_base())
    }

    /// `POST /api/auth/register`.
    pub async fn register(&self, username: &str, password: &str) -> Result<AuthResponse, ApiError> {
        let body = Credentials {
            username: username.to_owned(),
            password: password.to_owned(),
        };
        self.call(self.client.post(self.url("/api/auth/register")).json(&body))
            .await
    }

    /// `POST /api/auth/login`.
    pub async fn login(&self, username: &str, password: &str) -> Result<AuthResponse, ApiError> {
        let body = Credentials {
            username: username.to_owned(),
            password: password.to_owned(),
        };
        self.call(self.client.post(self.url("/api/auth/login")).json(&body))
            .await
    }

    /// `GET /api/chat/messages/`: ascending by id.
    pub async fn messages(&self, token: &str, query: Query) -> Result<Vec<Message>, ApiError> {
        let mut params = Vec::new();
        if let Some(a) = query.after {
            params.push(format!("after={a}"));
        }
        if let Some(b) = query.before {
            params.push(format!("before={b}"));
        }
        if let Some(l) = query.limit {
            params.push(format!("limit={l}"));
        }
        let mut url = self.url("/api/chat/messages/");
        if !params.is_empty() {
            url = format!("{url}?{}", params.join("&"));
        }
        self.call(self.client.get(url).bearer_auth(token)).await
    }

    /// `POST /api/chat/messages/` with the outgoing message's client_id (idempotent).
    pub async fn post_message(
        &self,
        token: &str,
        outgoing: &Outgoing,
    ) -> Result<Message, ApiError> {
        self.call(
            self.client
                .post(self.url("/api/chat/messages/"))
                .bearer_auth(token)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(outgoing.to_send().encode_body()),
        )
        .await
    }

    /// `GET /api/users/`.
    pub async fn users(&self, token: &str) -> Result<Vec<UserStatus>, ApiError> {
        self.call(self.client.get(self.url("/api/users/")).bearer_auth(token))
            .await
    }
}

/// reqwest's error without the URL (which may carry a query) and with its first cause.
fn short_error(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut source = e.source();
    let mut cause = None;
    while let Some(s) = source {
        cause = Some(s.to_string());
        source = s.source();
    }
    match cause {
        Some(c) => format!("{kind}: {c}"),
        None => kind.to_owned(),
    }
}
