//! The subscriber: the pub/sub connection and its reconnect loop, Redis's state (logged once
//! each way, not per message), and what each channel's messages do here — batches to
//! the gap filler (`gaps`), revoked tokens forgotten, presence events on to the presence task.

use std::sync::Arc;

use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::codec::{Batch, PresenceEvent, Revoked, unhex};
use super::gaps::deliver;
use super::{FromSubscriber, HEARTBEAT, Names, RECONNECT, REDIS_TIMEOUT};
use crate::bus::BusState;
use crate::state::AppState;

/// The subscriber: one pub/sub connection at a time, made anew whenever it breaks.
pub(super) async fn subscribe(
    state: Arc<AppState>,
    client: redis::Client,
    names: Names,
    me: String,
    url: String,
    to_presence: mpsc::UnboundedSender<FromSubscriber>,
) {
    let mut attempt = 0;
    // Whether the outage (or the first failure to connect) has been logged.
    let mut told_down = false;
    loop {
        let connected = tokio::select! {
            () = state.shutdown.cancelled() => return,
            c = connect_pubsub(&client, &names) => c,
        };
        match connected {
            Ok((mut sink, mut stream)) => {
                attempt = 0;
                state.bus.set_state(BusState::Connected);
                // Tokens logged out elsewhere during the outage never reached us.
                state.auth.bus_connected();
                let _ = to_presence.send(FromSubscriber::Connected);
                if told_down {
                    tracing::info!(%url, "Redis bus is back; other instances' messages arrive as they commit again");
                    told_down = false;
                } else {
                    tracing::info!(%url, instance = %me, "connected to the Redis bus");
                }
                let mut heartbeat = tokio::time::interval(HEARTBEAT);
                heartbeat.reset();
                let cause = loop {
                    tokio::select! {
                        () = state.shutdown.cancelled() => return,
                        msg = stream.next() => match msg {
                            Some(msg) => on_message(&state, &names, &me, &msg, &to_presence).await,
                            None => break "the connection closed".to_owned(),
                        },
                        _ = heartbeat.tick() => {
                            match tokio::time::timeout(REDIS_TIMEOUT, sink.ping::<redis::Value>()).await {
                                Ok(Ok(_)) => {}
                                Ok(Err(e)) => break e.to_string(),
                                Err(_) => break "Redis did not answer a ping in time".to_owned(),
                            }
                        }
                    }
                };
                went_down(&state, &url, &cause, &mut told_down);
            }
            Err(cause) => went_down(&state, &url, &cause, &mut told_down),
        }
        let wait = RECONNECT[attempt.min(RECONNECT.len() - 1)];
        attempt += 1;
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Redis is out of reach: polling from now on, said once.
fn went_down(state: &AppState, url: &str, cause: &str, told: &mut bool) {
    state.bus.set_state(BusState::Polling);
    state.auth.bus_lost();
    if !*told {
        tracing::warn!(
            %url,
            %cause,
            "Redis bus is out of reach; delivering other instances' messages by polling PostgreSQL every second until it is back"
        );
        *told = true;
    }
}

async fn connect_pubsub(
    client: &redis::Client,
    names: &Names,
) -> Result<(redis::aio::PubSubSink, redis::aio::PubSubStream), String> {
    let work = async {
        let (mut sink, stream) = client.get_async_pubsub().await?.split();
        sink.subscribe(&[&names.messages, &names.tokens, &names.presence])
            .await?;
        Ok::<_, redis::RedisError>((sink, stream))
    };
    match tokio::time::timeout(REDIS_TIMEOUT, work).await {
        Ok(Ok(pair)) => Ok(pair),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("connecting to Redis timed out".into()),
    }
}

async fn on_message(
    state: &AppState,
    names: &Names,
    me: &str,
    msg: &redis::Msg,
    to_presence: &mpsc::UnboundedSender<FromSubscriber>,
) {
    let channel = msg.get_channel_name();
    let payload = msg.get_payload_bytes();
    if channel == names.messages {
        match serde_json::from_slice::<Batch>(payload) {
            Ok(batch) if batch.from != me => deliver(state, &batch.messages).await,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "ignoring a bus message that is not a batch"),
        }
    } else if channel == names.tokens {
        match serde_json::from_slice::<Revoked>(payload) {
            Ok(r) if r.from != me => match unhex(&r.token) {
                Some(hash) => state.auth.forget(hash),
                None => tracing::warn!("ignoring a revocation with a malformed token hash"),
            },
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "ignoring a bus message that is not a revocation"),
        }
    } else if channel == names.presence {
        match serde_json::from_slice::<PresenceEvent>(payload) {
            Ok(e) if e.from != me => {
                let _ = to_presence.send(FromSubscriber::Event(e));
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "ignoring a bus message that is not a presence event")
            }
        }
    }
}
