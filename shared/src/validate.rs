//! Input rules and their limits. The server enforces them; the client checks the same rules
//! before sending so a user hears about a mistake at once.
//!
//! Every check returns a [`ValidationError`] whose message names the field and the rule.

use crate::error::{ErrorCode, ValidationError};

/// Longest username, in characters.
pub const MAX_USERNAME_CHARS: usize = 32;
/// Shortest password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password, in bytes: bounds the work a login can make the hasher do.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Default longest message text, in characters (Unicode scalar values).
pub const MAX_TEXT_CHARS: usize = 4000;
/// Longest client id, in characters.
pub const MAX_CLIENT_ID_CHARS: usize = 64;
/// Largest HTTP body or WebSocket frame, in bytes.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Messages returned by a history request that gives no `limit`.
pub const DEFAULT_HISTORY_LIMIT: usize = 100;
/// Most messages one history request may return.
pub const MAX_HISTORY_LIMIT: usize = 1000;

/// 1–32 characters of `A–Z a–z 0–9 _ . -`.
pub fn validate_username(name: &str) -> Result<(), ValidationError> {
    if name.is_empty() {
        return Err(ValidationError::field("username is empty"));
    }
    if name.chars().count() > MAX_USERNAME_CHARS {
        return Err(ValidationError::field(format!(
            "username is longer than {MAX_USERNAME_CHARS} characters"
        )));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(ValidationError::field(format!(
            "username may only contain A-Z a-z 0-9 _ . - (found {bad:?})"
        )));
    }
    Ok(())
}

/// At least 8 characters and at most 1 KiB.
pub fn validate_password(password: &str) -> Result<(), ValidationError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ValidationError::field(format!(
            "password is shorter than {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ValidationError::new(
            ErrorCode::TooLarge,
            format!("password is longer than {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Not empty, not only whitespace, at most `max_chars` characters, and no control
/// characters other than newline and tab: text is shown in other people's terminals, where
/// an escape sequence could rewrite their screen.
pub fn validate_text(text: &str, max_chars: usize) -> Result<(), ValidationError> {
    if text.trim().is_empty() {
        return Err(ValidationError::field(if text.is_empty() {
            "text is empty"
        } else {
            "text is only whitespace"
        }));
    }
    if text.chars().count() > max_chars {
        return Err(ValidationError::new(
            ErrorCode::TooLarge,
            format!("text is longer than {max_chars} characters"),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(ValidationError::field(
            "text contains control characters (only newline and tab are allowed)",
        ));
    }
    Ok(())
}

/// 1–64 characters, none of them control characters.
pub fn validate_client_id(id: &str) -> Result<(), ValidationError> {
    if id.is_empty() {
        return Err(ValidationError::field("client_id is empty"));
    }
    if id.chars().count() > MAX_CLIENT_ID_CHARS {
        return Err(ValidationError::field(format!(
            "client_id is longer than {MAX_CLIENT_ID_CHARS} characters"
        )));
    }
    if id.chars().any(char::is_control) {
        return Err(ValidationError::field(
            "client_id contains control characters",
        ));
    }
    Ok(())
}

/// 1–1000.
pub fn validate_history_limit(limit: usize) -> Result<(), ValidationError> {
    if limit == 0 || limit > MAX_HISTORY_LIMIT {
        return Err(ValidationError::field(format!(
            "limit must be between 1 and {MAX_HISTORY_LIMIT}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(validate_username("alice_B.1-x").is_ok());
        assert!(validate_username(&"a".repeat(32)).is_ok());
        assert!(validate_username(&"a".repeat(33)).is_err());
        assert!(validate_username("").is_err());
        assert!(validate_username("al ice").is_err());
        assert!(validate_username("élodie").is_err());
    }

    #[test]
    fn texts() {
        assert!(validate_text("hi", MAX_TEXT_CHARS).is_ok());
        assert!(validate_text("line one\n\tline two", MAX_TEXT_CHARS).is_ok());
        assert_eq!(
            validate_text(" \n\t", MAX_TEXT_CHARS).unwrap_err().message,
            "text is only whitespace"
        );
        assert_eq!(
            validate_text("", MAX_TEXT_CHARS).unwrap_err().message,
            "text is empty"
        );
        assert!(validate_text(&"é".repeat(4000), MAX_TEXT_CHARS).is_ok());
        assert_eq!(
            validate_text(&"é".repeat(4001), MAX_TEXT_CHARS)
                .unwrap_err()
                .code,
            ErrorCode::TooLarge
        );
        assert!(validate_text("bad \u{1b}[2J", MAX_TEXT_CHARS).is_err());
    }

    #[test]
    fn passwords_and_client_ids() {
        assert!(validate_password("12345678").is_ok());
        assert!(validate_password("1234567").is_err());
        assert!(validate_password(&"x".repeat(2000)).is_err());
        assert!(validate_client_id("abc-123").is_ok());
        assert!(validate_client_id("").is_err());
        assert!(validate_client_id(&"c".repeat(65)).is_err());
    }
}
