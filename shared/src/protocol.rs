//! WebSocket frames and REST bodies, with the seed app's field names.
//!
//! Decoding is lenient where the seed was (a frame without `type` is a chat message,
//! `text` is accepted for `message`, an empty `receiver_username` means everyone) and strict
//! everywhere else: every body and frame must be a JSON object (`parse_json`, the one entry
//! point for all of them), and every rule a message must meet is checked in
//! `SendMessage::from_raw`, so the REST handler and the WebSocket connection cannot disagree.

use serde::{Deserialize, Serialize};

use crate::error::{ErrorBody, ErrorCode, ValidationError};
use crate::model::{ClientId, Message, MessageId, Username};
use crate::validate;

/// Bumped when a frame changes incompatibly.
pub const PROTOCOL_VERSION: u32 = 1;

/// A message someone asks to send: the validated body of `POST /api/chat/messages/` and of a
/// `chat_message` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendMessage {
    /// The sender the client claims to be; the server refuses it unless it is the token's
    /// user. Kept raw: a claim that is not even a valid name is still just "not you".
    pub sender_username: Option<String>,
    /// `None` for everyone, else the receiver of a direct message.
    pub receiver_username: Option<Username>,
    /// The text, already checked against the length limit given to `from_raw`.
    pub text: String,
    /// The idempotency key, if any.
    pub client_id: Option<ClientId>,
}

/// Why a body or frame was refused, and the `client_id` it carried (when it could be read),
/// so a client can tell which of its sends failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// The broken rule.
    pub error: ValidationError,
    /// The `client_id` field, as sent, when the input parsed far enough to have one.
    pub client_id: Option<String>,
}

impl From<ValidationError> for DecodeError {
    fn from(error: ValidationError) -> Self {
        DecodeError {
            error,
            client_id: None,
        }
    }
}

/// The fields as they arrive, before any rule is applied. Unknown fields are ignored, as
/// the seed ignored them.
#[derive(Debug, Default, Deserialize)]
struct RawSend {
    #[serde(rename = "type")]
    kind: Option<String>,
    sender_username: Option<String>,
    receiver_username: Option<String>,
    message: Option<String>,
    text: Option<String>,
    client_id: Option<String>,
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ValidationError> {
    if bytes.len() > validate::MAX_FRAME_BYTES {
        return Err(ValidationError::new(
            ErrorCode::TooLarge,
            format!(
                "body or frame is larger than {} bytes",
                validate::MAX_FRAME_BYTES
            ),
        ));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ValidationError::new(ErrorCode::InvalidJson, "body is not valid UTF-8"))?;
    // serde reads a JSON array into a struct field by field, so without this check
    // `["mallory","correct horse"]` registers an account. Looking at the first byte costs
    // nothing on the hot path; the value is only parsed a second time when it is refused.
    if !text.trim_start_matches(JSON_WHITESPACE).starts_with('{') {
        return Err(not_an_object(text));
    }
    serde_json::from_str(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ValidationError::field(e.to_string()),
        _ => ValidationError::new(ErrorCode::InvalidJson, format!("malformed JSON: {e}")),
    })
}

/// The four characters JSON allows between tokens (RFC 8259 section 2); `str::trim_start`
/// would also skip Unicode spaces, which JSON does not.
const JSON_WHITESPACE: [char; 4] = [' ', '\t', '\n', '\r'];

/// The error for input that does not start with `{`: malformed JSON, or well-formed JSON of
/// the wrong kind (named, so the sender sees what it sent).
fn not_an_object(text: &str) -> ValidationError {
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
        return ValidationError::new(ErrorCode::InvalidJson, format!("malformed JSON: {e}"));
    }
    let kind = match text.trim_start_matches(JSON_WHITESPACE).as_bytes().first() {
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    };
    ValidationError::new(
        ErrorCode::InvalidJson,
        format!("body or frame must be a JSON object {{...}}, not {kind}"),
    )
}

/// Parses a JSON object body into `T`, classifying failures the way the protocol reports
/// them: not UTF-8, not JSON or not an object is `invalid_json`, a wrong field type is `invalid_field`,
/// over [`validate::MAX_FRAME_BYTES`] is `too_large`.
pub fn decode_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ValidationError> {
    parse_json(bytes)
}

impl SendMessage {
    /// A group message with no client id.
    pub fn to_everyone(text: impl Into<String>) -> Self {
        SendMessage {
            sender_username: None,
            receiver_username: None,
            text: text.into(),
            client_id: None,
        }
    }

    /// Decodes a `POST /api/chat/messages/` body.
    pub fn from_json_body(bytes: &[u8], max_text_chars: usize) -> Result<Self, DecodeError> {
        let raw: RawSend = parse_json(bytes)?;
        Self::from_raw(raw, max_text_chars)
    }

    fn from_raw(raw: RawSend, max_text_chars: usize) -> Result<Self, DecodeError> {
        let client_id_raw = raw.client_id.clone();
        let with_id = |error: ValidationError| DecodeError {
            error,
            client_id: client_id_raw.clone(),
        };
        let client_id = raw
            .client_id
            .as_deref()
            .map(ClientId::parse)
            .transpose()
            .map_err(with_id)?;
        let text = raw
            .message
            .or(raw.text)
            .ok_or_else(|| with_id(ValidationError::field("text is missing")))?;
        validate::validate_text(&text, max_text_chars).map_err(with_id)?;
        let receiver_username =
            match raw.receiver_username.as_deref() {
                None | Some("") => None,
                Some(name) => Some(Username::parse(name).map_err(|e| {
                    with_id(ValidationError::field(format!("receiver_username: {e}")))
                })?),
            };
        let sender_username = raw.sender_username.filter(|s| !s.is_empty());
        Ok(SendMessage {
            sender_username,
            receiver_username,
            text,
            client_id,
        })
    }
}

/// A frame from client to server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    /// `{"type":"chat_message", "receiver_username"?, "message", "client_id"?}`
    ChatMessage(SendMessage),
}

impl ClientFrame {
    /// Decodes a text frame. A frame without `type` is a chat message, as in the seed.
    pub fn decode(bytes: &[u8], max_text_chars: usize) -> Result<Self, DecodeError> {
        let raw: RawSend = parse_json(bytes)?;
        match raw.kind.as_deref() {
            None | Some("chat_message") => {
                SendMessage::from_raw(raw, max_text_chars).map(ClientFrame::ChatMessage)
            }
            Some(other) => Err(DecodeError {
                error: ValidationError::new(
                    ErrorCode::UnknownType,
                    format!("unknown frame type {other:?} (expected \"chat_message\")"),
                ),
                client_id: raw.client_id,
            }),
        }
    }

    /// The JSON text of this frame, as a client sends it.
    pub fn encode(&self) -> String {
        let ClientFrame::ChatMessage(m) = self;
        m.encode(Encoding::Frame)
    }
}

/// Where a [`SendMessage`] is going: the two places a client sends one name the text
/// differently (the seed's names, kept), and only the frame carries `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    /// A `chat_message` frame on the socket: `"message"`.
    Frame,
    /// A `POST /api/chat/messages/` body: `"text"`.
    Body,
}

impl SendMessage {
    /// The JSON body of `POST /api/chat/messages/` that sends this message.
    pub fn encode_body(&self) -> String {
        self.encode(Encoding::Body)
    }

    /// The one encoder of a send, for the socket and for REST alike, so the two can only
    /// differ where the protocol says they do.
    fn encode(&self, to: Encoding) -> String {
        #[derive(Serialize)]
        struct Wire<'a> {
            #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
            kind: Option<&'static str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            sender_username: Option<&'a str>,
            receiver_username: Option<&'a Username>,
            #[serde(skip_serializing_if = "Option::is_none")]
            message: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            text: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            client_id: Option<&'a ClientId>,
        }
        let frame = to == Encoding::Frame;
        let wire = Wire {
            kind: frame.then_some("chat_message"),
            sender_username: self.sender_username.as_deref(),
            receiver_username: self.receiver_username.as_ref(),
            message: frame.then_some(self.text.as_str()),
            text: (!frame).then_some(self.text.as_str()),
            client_id: self.client_id.as_ref(),
        };
        // Serializing plain strings and options into a String cannot fail.
        serde_json::to_string(&wire).unwrap_or_default()
    }
}

/// A frame from server to client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// A message the connection's user may see, their own included (the echo is the ack).
    ChatMessage {
        /// The stored message.
        message: Message,
    },
    /// Sent once, after the upgrade and any replay: who this connection is and the newest
    /// message id it has been sent (`None` if it has been sent none).
    Ready {
        /// The token's user.
        username: Username,
        /// Newest id replayed on this connection.
        last_id: Option<MessageId>,
    },
    /// A user's first connection opened (`online: true`) or their last one closed.
    Presence {
        /// Whose presence changed.
        username: Username,
        /// Whether they now have at least one connection.
        online: bool,
    },
    /// A frame was refused; the connection stays open.
    Error {
        /// What was wrong.
        error: ErrorBody,
        /// The refused frame's `client_id`, when it had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
}

impl ServerFrame {
    /// Encodes `{"type":"chat_message","message":…}` without cloning the message: the server
    /// does this once per message and shares the bytes with every receiver.
    pub fn encode_chat_message(message: &Message) -> String {
        #[derive(Serialize)]
        struct Out<'a> {
            #[serde(rename = "type")]
            kind: &'static str,
            message: &'a Message,
        }
        serde_json::to_string(&Out {
            kind: "chat_message",
            message,
        })
        .unwrap_or_default()
    }

    /// Encodes this frame as JSON text.
    pub fn encode(&self) -> String {
        // Every field is a string, number, bool or null: serialization cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Decodes a frame received from the server.
    pub fn decode(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// `POST /api/auth/register` and `/login` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// The account name.
    pub username: String,
    /// The password, in clear over the (local) connection; never stored or logged.
    pub password: String,
}

/// Reply to register (201) and login (200).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthResponse {
    /// The account's name as registered.
    pub username: Username,
    /// A bearer token for `Authorization: Bearer …` and `?token=`.
    pub token: String,
}

/// One row of `GET /api/users/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserStatus {
    /// The account's name.
    pub username: Username,
    /// Whether it has at least one open WebSocket.
    pub online: bool,
}

/// Every HTTP error body: `{"error":{"code","message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// What went wrong.
    pub error: ErrorBody,
}
