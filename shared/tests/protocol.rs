//! Protocol properties: frames survive a JSON round trip, arbitrary input never panics the
//! decoder, and the decoder accepts exactly what the validation rules accept.

#![allow(clippy::unwrap_used)] // tests may panic
use natter_shared::protocol::{ClientFrame, SendMessage, ServerFrame};
use natter_shared::validate::{self, MAX_TEXT_CHARS};
use natter_shared::{ClientId, ErrorBody, ErrorCode, Message, MessageId, Timestamp, Username};
use proptest::prelude::*;

fn username() -> impl Strategy<Value = Username> {
    "[A-Za-z0-9_.-]{1,32}".prop_map(|s| Username::parse(&s).unwrap())
}

fn text() -> impl Strategy<Value = String> {
    "[^\\p{Cc}]{0,40}[a-z\u{1F600}é][^\\p{Cc}\n]{0,40}"
}

fn message() -> impl Strategy<Value = Message> {
    (
        1i64..i64::MAX,
        username(),
        proptest::option::of(username()),
        text(),
        0i64..4_102_444_800_000,
        proptest::option::of("[a-z0-9-]{1,64}"),
    )
        .prop_map(|(id, sender, receiver, text, ms, cid)| Message {
            id: MessageId(id),
            sender_username: sender,
            receiver_username: receiver,
            text,
            created_at: Timestamp::from_unix_millis(ms),
            client_id: cid.map(|c| ClientId::parse(&c).unwrap()),
        })
}

proptest! {
    /// Every server frame decodes to what was encoded.
    #[test]
    fn server_frames_round_trip(m in message(), u in username(), online: bool) {
        let frames = [
            ServerFrame::ChatMessage { message: m.clone() },
            ServerFrame::Ready { username: u.clone(), last_id: Some(m.id) },
            ServerFrame::Ready { username: u.clone(), last_id: None },
            ServerFrame::Presence { username: u, online },
            ServerFrame::Error { error: ErrorBody::new(ErrorCode::TooLarge, "x"), client_id: None },
        ];
        for f in frames {
            prop_assert_eq!(ServerFrame::decode(&f.encode()).unwrap(), f);
        }
        let shared = ServerFrame::encode_chat_message(&m);
        prop_assert_eq!(ServerFrame::decode(&shared).unwrap(), ServerFrame::ChatMessage { message: m });
    }

    /// A client frame decodes to what the client encoded.
    #[test]
    fn client_frames_round_trip(receiver in proptest::option::of(username()), t in text(),
                                cid in proptest::option::of("[a-z0-9]{1,64}")) {
        let frame = ClientFrame::ChatMessage(SendMessage {
            sender_username: None,
            receiver_username: receiver,
            text: t,
            client_id: cid.map(|c| ClientId::parse(&c).unwrap()),
        });
        prop_assert_eq!(ClientFrame::decode(frame.encode().as_bytes(), MAX_TEXT_CHARS).unwrap(), frame.clone());
        // The same send as a POST body: the seed's field names, decoded to the same message.
        let ClientFrame::ChatMessage(send) = frame;
        let body = send.encode_body();
        prop_assert!(body.contains("\"text\":") && !body.contains("\"type\""), "{}", body);
        prop_assert_eq!(SendMessage::from_json_body(body.as_bytes(), MAX_TEXT_CHARS).unwrap(), send);
    }

    /// Arbitrary bytes never panic the decoder.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = ClientFrame::decode(&bytes, MAX_TEXT_CHARS);
        let _ = SendMessage::from_json_body(&bytes, MAX_TEXT_CHARS);
    }

    /// The decoder accepts a text exactly when the validation rule does.
    #[test]
    fn decoder_agrees_with_validate(t in "\\PC{0,8}|[ \t\n\u{1b}a]{0,8}") {
        let body = serde_json::json!({"message": t}).to_string();
        prop_assert_eq!(
            ClientFrame::decode(body.as_bytes(), MAX_TEXT_CHARS).is_ok(),
            validate::validate_text(&t, MAX_TEXT_CHARS).is_ok()
        );
    }
}

/// The seed's frame shapes: no `type`, `text` for `message`, empty receiver = everyone.
#[test]
fn seed_shapes_decode() {
    let f = ClientFrame::decode(br#"{"message":"hi","receiver_username":""}"#, 100).unwrap();
    assert_eq!(f, ClientFrame::ChatMessage(SendMessage::to_everyone("hi")));
    let f = ClientFrame::decode(br#"{"type":"chat_message","text":"hi"}"#, 100).unwrap();
    assert_eq!(f, ClientFrame::ChatMessage(SendMessage::to_everyone("hi")));
}

/// Each kind of bad input gets its own code, and the client_id comes back when it parsed.
#[test]
fn bad_inputs_are_classified() {
    let code = |b: &[u8]| ClientFrame::decode(b, 10).unwrap_err().error.code;
    assert_eq!(code(b"{not json"), ErrorCode::InvalidJson);
    assert_eq!(code(b"[1,2]"), ErrorCode::InvalidJson);
    assert_eq!(code(b"\xff\xfe"), ErrorCode::InvalidJson);
    assert_eq!(code(br#"{"message":5}"#), ErrorCode::InvalidField);
    assert_eq!(code(br#"{"message":"   "}"#), ErrorCode::InvalidField);
    assert_eq!(code(br#"{}"#), ErrorCode::InvalidField);
    assert_eq!(code(br#"{"message":"01234567890"}"#), ErrorCode::TooLarge);
    assert_eq!(
        code(br#"{"type":"shout","message":"x"}"#),
        ErrorCode::UnknownType
    );
    assert_eq!(
        code(br#"{"message":"x","receiver_username":"no spaces"}"#),
        ErrorCode::InvalidField
    );
    let big = format!(
        r#"{{"message":"{}"}}"#,
        "a".repeat(validate::MAX_FRAME_BYTES)
    );
    assert_eq!(code(big.as_bytes()), ErrorCode::TooLarge);
    let e = ClientFrame::decode(br#"{"message":"","client_id":"c1"}"#, 10).unwrap_err();
    assert_eq!(e.client_id.as_deref(), Some("c1"));
}

/// Timestamps are RFC 3339 UTC with milliseconds and a Z.
#[test]
fn timestamp_format() {
    assert_eq!(
        Timestamp::from_unix_millis(1_700_000_000_123).to_string(),
        "2023-11-14T22:13:20.123Z"
    );
}

/// A JSON array where an object is expected is `invalid_json` on every decoding path, even
/// when its elements would fill the struct's fields in order (serde reads a sequence into a
/// struct field by field, so `["mallory","correct horse"]` once registered an account).
#[test]
fn arrays_are_not_objects() {
    use natter_shared::protocol::{Credentials, decode_json};
    let creds = decode_json::<Credentials>(br#"["mallory","correct horse"]"#).unwrap_err();
    assert_eq!(creds.code, ErrorCode::InvalidJson, "{creds}");
    assert!(creds.message.contains("JSON object"), "{creds}");
    let full = br#"["chat_message", null, null, "hi", null, null]"#;
    let body = SendMessage::from_json_body(full, 100).unwrap_err().error;
    assert_eq!(body.code, ErrorCode::InvalidJson, "{body}");
    let frame = ClientFrame::decode(full, 100).unwrap_err().error;
    assert_eq!(frame.code, ErrorCode::InvalidJson, "{frame}");
    let short = ClientFrame::decode(br#"["hi"]"#, 100).unwrap_err().error;
    assert_eq!(short.code, ErrorCode::InvalidJson, "{short}");
}

/// Whitespace before the object is still an object; a scalar is refused like an array.
#[test]
fn only_objects_decode() {
    let ok = ClientFrame::decode(b" \r\n\t{\"message\":\"hi\"}", 100).unwrap();
    assert_eq!(ok, ClientFrame::ChatMessage(SendMessage::to_everyone("hi")));
    for scalar in [&b"\"hi\""[..], b"42", b"true", b"null"] {
        let e = ClientFrame::decode(scalar, 100).unwrap_err().error;
        assert_eq!(e.code, ErrorCode::InvalidJson);
        assert!(e.message.contains("JSON object"), "{e}");
    }
}
