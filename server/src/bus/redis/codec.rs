//! The wire format of the bus: the JSON payload of each channel, and the hex a token hash
//! travels as. Only the tasks in `bus::redis` encode and decode these.

use natter_shared::{Message, Username};
use serde::{Deserialize, Serialize};

/// `P:messages`: a batch one instance committed.
#[derive(Serialize, Deserialize)]
pub(super) struct Batch {
    pub(super) from: String,
    pub(super) messages: Vec<Message>,
}

/// `P:tokens`: a token logged out.
#[derive(Serialize, Deserialize)]
pub(super) struct Revoked {
    pub(super) from: String,
    /// The token's SHA-256, hex.
    pub(super) token: String,
}

/// `P:presence`: changes to one instance's users at a stamp; `resync` asks everyone to
/// reread its hash (it was rewritten whole, or deleted at shutdown).
#[derive(Serialize, Deserialize)]
pub(super) struct PresenceEvent {
    pub(super) from: String,
    pub(super) run: String,
    pub(super) seq: u64,
    #[serde(default)]
    pub(super) changes: Vec<(Username, bool)>,
    #[serde(default)]
    pub(super) resync: bool,
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_hashes_round_trip_as_hex() {
        let h = [0xabu8; 32];
        assert_eq!(unhex(&hex(&h)), Some(h));
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex(&"g".repeat(64)), None);
    }
}
