//! Gap filling: another instance's batch reaches the feed only after the ids missing before
//! it, read from PostgreSQL, so the feed never skips (see `bus`'s module doc for why a batch
//! past the cursor proves a gap).

use natter_shared::{Message, MessageId, Timestamp};

use crate::state::AppState;

/// Another instance's batch: to the feed, after the ids missing before it, read from
/// PostgreSQL. If that read fails the batch is left: the writer's probe finds it all.
pub(super) async fn deliver(state: &AppState, messages: &[Message]) {
    if let Err(gap) = state.feed.offer(messages) {
        let through = MessageId(gap.before.0 - 1);
        match state.store.messages_between(gap.after, through).await {
            Ok(missing) => {
                tracing::debug!(
                    after = gap.after.0,
                    through = through.0,
                    found = missing.len(),
                    "filled a gap in the bus from PostgreSQL"
                );
                state.feed.fill(through, &missing);
                if state.feed.offer(messages).is_err() {
                    // Cannot happen (the fill reached the batch); the probe would fill it.
                    tracing::error!("a bus batch still had a gap after the fill");
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(error = %crate::error::Chain(&e), "cannot fill a gap in the bus now; the next poll will");
                return;
            }
        }
    }
    if let Some(last) = messages.last() {
        let lag = Timestamp::now().unix_millis() - last.created_at.unix_millis();
        metrics::histogram!(crate::metrics::BUS_LAG_SECONDS).record(lag.max(0) as f64 / 1000.0);
    }
}
