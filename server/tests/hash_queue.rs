//! The password-hashing queue stays bounded when callers go away: a hash whose request was
//! dropped still holds its place until it has run. (Its own test binary, since the queue is
//! process-wide and other tests hash too.)
#![allow(clippy::unwrap_used)]

use futures_util::FutureExt;
use natter_server::error::ServerError;

/// 64 hashes whose callers hang up right after queueing them leave (almost) no room: new
/// hashes are refused with `busy` at once (a few may get in as the first abandoned ones
/// finish; with the slots freed on hang-up, 64 would), and once they have run there is room
/// again.
#[tokio::test]
async fn abandoned_hashes_keep_their_places() {
    for _ in 0..64 {
        // Polled once: admitted and queued; then dropped, as when a client disconnects.
        let mut hash = Box::pin(natter_server::auth::hash_password("abandoned"));
        assert!((&mut hash).now_or_never().is_none());
    }
    let mut admitted = Vec::new();
    let refused = loop {
        let mut hash = Box::pin(natter_server::auth::hash_password("next"));
        match (&mut hash).now_or_never() {
            None => admitted.push(hash),
            Some(Err(ServerError::Busy)) => break true,
            Some(other) => panic!("{:?}", other.map(|_| ())),
        }
        if admitted.len() >= 64 {
            break false;
        }
    };
    assert!(
        refused && admitted.len() < 8,
        "{} more hashes were admitted past 64 abandoned ones",
        admitted.len()
    );
    drop(admitted);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match natter_server::auth::hash_password("later").await {
            Ok(_) => break,
            Err(ServerError::Busy) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the queue never drained"
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
}
