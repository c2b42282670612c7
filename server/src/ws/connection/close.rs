//! How a connection ends: the reason ([`End`]), the close frame each carries, and its
//! label in the closed-connections metric.

use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::ws::outgoing::WriteError;

/// Why the loop ended.
pub(super) enum End {
    /// The client closed (a close frame, or end of stream).
    ClientClosed,
    /// The connection failed: nothing more can be sent.
    Error,
    /// The server closes, with this code and reason.
    Close(CloseCode, &'static str),
}

impl From<WriteError> for End {
    fn from(e: WriteError) -> End {
        match e {
            WriteError::Closed => End::Error,
            WriteError::TimedOut => End::Close(
                CloseCode::Policy,
                "write timeout: the connection accepted no data for too long; reconnect with ?after=<last id>",
            ),
        }
    }
}

/// Why a connection ended, as a metric label.
pub(super) fn close_label(end: &End) -> &'static str {
    match end {
        End::ClientClosed => "client_closed",
        End::Error => "lost",
        End::Close(code, reason) => match u16::from(*code) {
            1001 if reason.starts_with("server shutting") => "shutdown",
            1001 => "idle",
            1002 => "protocol_error",
            1007 => "invalid_utf8",
            1008 if reason.starts_with("write timeout") => "write_timeout",
            1008 => "token_revoked",
            1009 => "too_big",
            1011 => "server_error",
            _ => "other",
        },
    }
}

/// The reason in the 1002 close frame for a frame that broke RFC 6455. A close reason must
/// fit in 123 bytes, and `End::Close` carries a `&'static str`, so each is a fixed sentence.
pub(super) fn protocol_close_reason(e: &ProtocolError) -> &'static str {
    match e {
        ProtocolError::UnmaskedFrameFromClient => "protocol error: client frames must be masked",
        ProtocolError::NonZeroReservedBits => {
            "protocol error: reserved bits set, but no extension was negotiated"
        }
        ProtocolError::UnknownDataFrameType(_)
        | ProtocolError::UnknownControlFrameType(_)
        | ProtocolError::InvalidOpcode(_) => "protocol error: unknown opcode",
        ProtocolError::FragmentedControlFrame => "protocol error: fragmented control frame",
        ProtocolError::ControlFrameTooBig => "protocol error: control frame payload over 125 bytes",
        ProtocolError::UnexpectedContinueFrame => {
            "protocol error: continuation frame with no message to continue"
        }
        ProtocolError::ExpectedFragment(_) => {
            "protocol error: new message before the last fragment of the previous one"
        }
        ProtocolError::InvalidCloseSequence => "protocol error: invalid close frame payload",
        _ => "protocol error",
    }
}
