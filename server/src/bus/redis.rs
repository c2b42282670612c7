//! The tasks that talk to Redis, started once the instance is listening ([`start`]):
//!
//! - the **publisher** sends this instance's commits and token revocations (`PUBLISH`);
//! - the **subscriber** holds the pub/sub connection, hands other instances' batches to the
//!   [`Feed`](super::Feed) (filling gaps from PostgreSQL first), forgets revoked tokens,
//!   passes presence events on, and notices Redis going away and coming back — logged once
//!   each way, not per message;
//! - the **presence** task owns this instance's entry in Redis (a hash of its users, kept
//!   alive by a heartbeat: killed, it expires within [`PRESENCE_TTL`]) and the view of the
//!   others' ([`ClusterPresence`]), and tells the hub whose presence flipped.
//!
//! Names, all under the prefix `P`: channels `P:messages`, `P:tokens`, `P:presence`; keys
//! `P:instances` (a set of instance names) and `P:presence:NAME` (that instance's hash: a
//! field per user, plus `#run` and `#seq`; user names cannot contain `#`).
//!
//! Every Redis call is bounded by [`REDIS_TIMEOUT`]; every task ends when shutdown starts.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use natter_shared::{Message, MessageId, Timestamp, Username};
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::presence::{ClusterPresence, Flip};
use super::{BusState, LocalPresence, Outgoing};
use crate::state::AppState;

/// Longest any one Redis call may take.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the subscriber checks that Redis still answers (a Redis that hangs sends no
/// EOF), and the presence task refreshes its entry and rereads the others'.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// An instance's presence entry outlives its last heartbeat by this much: a killed
/// instance's users are shown offline within `PRESENCE_TTL + HEARTBEAT` (20 s).
const PRESENCE_TTL: Duration = Duration::from_secs(15);

/// Waits between attempts to reach Redis again.
const RECONNECT: [Duration; 4] = [
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
];

/// Local presence changes sent in one Redis transaction, at most.
const PRESENCE_BATCH: usize = 512;

/// `P:messages`: a batch one instance committed.
#[derive(Serialize, Deserialize)]
struct Batch {
    from: String,
    messages: Vec<Message>,
}

/// `P:tokens`: a token logged out.
#[derive(Serialize, Deserialize)]
struct Revoked {
    from: String,
    /// The token's SHA-256, hex.
    token: String,
}

/// `P:presence`: changes to one instance's users at a stamp; `resync` asks everyone to
/// reread its hash (it was rewritten whole, or deleted at shutdown).
#[derive(Serialize, Deserialize)]
struct PresenceEvent {
    from: String,
    run: String,
    seq: u64,
    #[serde(default)]
    changes: Vec<(Username, bool)>,
    #[serde(default)]
    resync: bool,
}

/// Channel and key names.
#[derive(Clone)]
struct Names {
    messages: String,
    tokens: String,
    presence: String,
    instances: String,
    prefix: String,
}

impl Names {
    fn new(prefix: &str) -> Names {
        Names {
            messages: format!("{prefix}:messages"),
            tokens: format!("{prefix}:tokens"),
            presence: format!("{prefix}:presence"),
            instances: format!("{prefix}:instances"),
            prefix: prefix.to_owned(),
        }
    }

    fn entry(&self, instance: &str) -> String {
        format!("{}:presence:{instance}", self.prefix)
    }
}

/// What the subscriber tells the presence task.
enum FromSubscriber {
    /// Another instance's presence event.
    Event(PresenceEvent),
    /// Redis is reachable again after an outage (or for the first time): rewrite our entry,
    /// reread everyone's.
    Connected,
}

/// Starts the Redis tasks for `instance`, if the server has a bus; a no-op without one.
pub fn start(state: &Arc<AppState>, instance: &str) {
    let Some(target) = state.bus.target.clone() else {
        return;
    };
    let (Some(outgoing), Some(local)) = (
        state
            .bus
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(),
        state
            .bus
            .presence_pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(),
    ) else {
        tracing::error!("the bus was started twice");
        return;
    };
    let client = match redis::Client::open(target.url.as_str()) {
        Ok(c) => c,
        Err(e) => {
            // Checked when the flag was parsed; this is for `Config` built in code.
            tracing::error!(error = %e, "cannot use the Redis URL; running without the bus (polling)");
            return;
        }
    };
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(REDIS_TIMEOUT))
        .set_response_timeout(Some(REDIS_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_secs(1));
    let manager = match ConnectionManager::new_lazy_with_config(client.clone(), config) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "cannot set up the Redis connection; running without the bus (polling)");
            return;
        }
    };
    let names = Names::new(&target.prefix);
    let (to_presence, from_subscriber) = mpsc::unbounded_channel();
    state.tasks.spawn(publish(
        Arc::clone(state),
        manager.clone(),
        names.clone(),
        instance.to_owned(),
        outgoing,
    ));
    state.tasks.spawn(subscribe(
        Arc::clone(state),
        client,
        names.clone(),
        instance.to_owned(),
        // What the log shows: never the password.
        target.to_string(),
        to_presence,
    ));
    state.tasks.spawn(presence(
        Arc::clone(state),
        manager,
        names,
        instance.to_owned(),
        local,
        from_subscriber,
    ));
}

/// The publisher: drains what the instance has to say and publishes it in one pipeline.
/// A failed publish is dropped, not retried: the others fill from PostgreSQL.
async fn publish(
    state: Arc<AppState>,
    mut redis: ConnectionManager,
    names: Names,
    me: String,
    mut rx: mpsc::Receiver<Outgoing>,
) {
    let mut pending = Vec::new();
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            n = rx.recv_many(&mut pending, 64) => if n == 0 { return },
        }
        let mut pipe = redis::pipe();
        for out in pending.drain(..) {
            let (channel, payload) = match out {
                Outgoing::Messages(messages) => (
                    &names.messages,
                    serde_json::to_vec(&Batch {
                        from: me.clone(),
                        messages,
                    }),
                ),
                Outgoing::Revoked(hash) => (
                    &names.tokens,
                    serde_json::to_vec(&Revoked {
                        from: me.clone(),
                        token: hex(&hash),
                    }),
                ),
            };
            match payload {
                Ok(p) => {
                    pipe.publish(channel, p).ignore();
                }
                Err(e) => tracing::error!(error = %e, "cannot encode a bus message"),
            }
        }
        match tokio::time::timeout(REDIS_TIMEOUT, pipe.query_async::<()>(&mut redis)).await {
            Ok(Ok(())) => {}
            // The subscriber logs Redis's state; one line per failed publish would flood.
            Ok(Err(e)) => tracing::debug!(error = %e, "publish to Redis failed"),
            Err(_) => tracing::debug!("publish to Redis timed out"),
        }
    }
}

/// The subscriber: one pub/sub connection at a time, made anew whenever it breaks.
async fn subscribe(
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

/// Another instance's batch: to the feed, after the ids missing before it, read from
/// PostgreSQL. If that read fails the batch is left: the writer's probe finds it all.
async fn deliver(state: &AppState, messages: &[Message]) {
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

/// This instance's presence entry as it is kept in Redis.
struct Mine {
    run: String,
    seq: u64,
    /// Case-folded name → name.
    users: BTreeMap<String, Username>,
    /// A write to Redis failed (or Redis came back): rewrite the whole entry.
    dirty: bool,
    /// Whether a second instance with our name was reported.
    clash_told: bool,
}

/// The presence task: this instance's entry, the others' view, and the hub told of flips.
async fn presence(
    state: Arc<AppState>,
    mut redis: ConnectionManager,
    names: Names,
    me: String,
    mut local: mpsc::UnboundedReceiver<LocalPresence>,
    mut from_subscriber: mpsc::UnboundedReceiver<FromSubscriber>,
) {
    let mut mine = Mine {
        run: run_id(),
        seq: 0,
        users: BTreeMap::new(),
        dirty: true,
        clash_told: false,
    };
    let mut others = ClusterPresence::default();
    let entry = names.entry(&me);
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    // Offline frames wait out the hub's grace; a quarter of it is late enough.
    let mut flush = tokio::time::interval(crate::hub::OFFLINE_GRACE / 4);
    let mut changes = Vec::new();
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => break,
            n = local.recv_many(&mut changes, PRESENCE_BATCH) => {
                if n == 0 { break }
                let batch: Vec<(Username, bool)> = changes
                    .drain(..)
                    .map(|c: LocalPresence| {
                        if c.online {
                            mine.users.insert(c.user.key(), c.user.clone());
                        } else {
                            mine.users.remove(&c.user.key());
                        }
                        (c.user, c.online)
                    })
                    .collect();
                if !mine.dirty {
                    write_changes(&mut redis, &names, &entry, &me, &mut mine, batch).await;
                }
            }
            got = from_subscriber.recv() => match got {
                None => break,
                Some(FromSubscriber::Connected) => {
                    mine.dirty = true;
                    refresh(&mut redis, &names, &entry, &me, &mut mine).await;
                    reconcile(&state, &mut redis, &names, &me, &mut others).await;
                }
                Some(FromSubscriber::Event(e)) => {
                    let applied = if e.resync {
                        Err(super::presence::Resync)
                    } else {
                        others.event(&e.from, &e.run, e.seq, &e.changes)
                    };
                    match applied {
                        Ok(flips) => tell_hub(&state, flips),
                        Err(_) => reread(&state, &mut redis, &names, &e.from, &mut others).await,
                    }
                }
            },
            _ = flush.tick() => state.hub.flush_leaving(),
            _ = heartbeat.tick() => {
                refresh(&mut redis, &names, &entry, &me, &mut mine).await;
                reconcile(&state, &mut redis, &names, &me, &mut others).await;
            }
        }
    }
    // A goodbye, so the others need not wait for the entry to expire.
    let mut pipe = redis::pipe();
    pipe.del(&entry)
        .ignore()
        .srem(&names.instances, &me)
        .ignore();
    if let Ok(event) = serde_json::to_vec(&PresenceEvent {
        from: me.clone(),
        run: mine.run.clone(),
        seq: mine.seq + 1,
        changes: Vec::new(),
        resync: true,
    }) {
        pipe.publish(&names.presence, event).ignore();
    }
    let _ = tokio::time::timeout(REDIS_TIMEOUT, pipe.query_async::<()>(&mut redis)).await;
}

/// Some of our users came or went: the hash and the event in one transaction.
async fn write_changes(
    redis: &mut ConnectionManager,
    names: &Names,
    entry: &str,
    me: &str,
    mine: &mut Mine,
    changes: Vec<(Username, bool)>,
) {
    let seq = mine.seq + 1;
    let mut pipe = redis::pipe();
    pipe.atomic();
    for (user, online) in &changes {
        if *online {
            pipe.hset(entry, user.key(), user.as_str()).ignore();
        } else {
            pipe.hdel(entry, user.key()).ignore();
        }
    }
    pipe.hset(entry, "#seq", seq).ignore();
    pipe.pexpire(entry, PRESENCE_TTL.as_millis() as i64)
        .ignore();
    let event = PresenceEvent {
        from: me.to_owned(),
        run: mine.run.clone(),
        seq,
        changes,
        resync: false,
    };
    match serde_json::to_vec(&event) {
        Ok(e) => {
            pipe.publish(&names.presence, e).ignore();
        }
        Err(_) => mine.dirty = true,
    }
    mine.seq = seq;
    match tokio::time::timeout(REDIS_TIMEOUT, pipe.query_async::<()>(redis)).await {
        Ok(Ok(())) => {}
        _ => mine.dirty = true,
    }
}

/// The heartbeat: keeps our entry alive, rewriting it whole if a write was missed.
async fn refresh(
    redis: &mut ConnectionManager,
    names: &Names,
    entry: &str,
    me: &str,
    mine: &mut Mine,
) {
    let mut pipe = redis::pipe();
    pipe.atomic();
    let rewrite = mine.dirty;
    if rewrite {
        mine.seq += 1;
        pipe.del(entry).ignore();
        let mut fields: Vec<(String, String)> = vec![
            ("#run".into(), mine.run.clone()),
            ("#seq".into(), mine.seq.to_string()),
        ];
        fields.extend(mine.users.iter().map(|(k, u)| (k.clone(), u.to_string())));
        pipe.hset_multiple(entry, &fields).ignore();
        if let Ok(event) = serde_json::to_vec(&PresenceEvent {
            from: me.to_owned(),
            run: mine.run.clone(),
            seq: mine.seq,
            changes: Vec::new(),
            resync: true,
        }) {
            pipe.publish(&names.presence, event).ignore();
        }
    }
    pipe.pexpire(entry, PRESENCE_TTL.as_millis() as i64)
        .ignore();
    pipe.sadd(&names.instances, me).ignore();
    if let Ok(Ok(())) = tokio::time::timeout(REDIS_TIMEOUT, pipe.query_async::<()>(redis)).await {
        mine.dirty = false;
    } else {
        mine.dirty = true;
        return;
    }
    // Another process under our name rewrites our entry with its own run: both instances'
    // users would come and go at random. Said once; our entry is rewritten each time.
    let run = tokio::time::timeout(
        REDIS_TIMEOUT,
        redis::cmd("HGET")
            .arg(entry)
            .arg("#run")
            .query_async::<Option<String>>(redis),
    )
    .await;
    if let Ok(Ok(Some(run))) = run
        && run != mine.run
    {
        if !mine.clash_told {
            tracing::warn!(
                instance = %me,
                "another natter-server uses this --instance-name on the same bus; give each instance its own name, or presence will be wrong"
            );
            mine.clash_told = true;
        }
        mine.dirty = true;
    }
}

/// Rereads every other instance's entry; those that expired are gone.
async fn reconcile(
    state: &AppState,
    redis: &mut ConnectionManager,
    names: &Names,
    me: &str,
    others: &mut ClusterPresence,
) {
    let listed = tokio::time::timeout(
        REDIS_TIMEOUT,
        redis::cmd("SMEMBERS")
            .arg(&names.instances)
            .query_async::<Vec<String>>(redis),
    )
    .await;
    let Ok(Ok(mut listed)) = listed else {
        return; // Redis is away: keep what we know until it is back.
    };
    listed.retain(|i| i != me);
    // Instances we know of that are no longer listed are read too (and found gone).
    for known in others.instances() {
        if !listed.iter().any(|l| l == known) {
            listed.push(known.to_owned());
        }
    }
    let mut pipe = redis::pipe();
    for instance in &listed {
        pipe.hgetall(names.entry(instance));
    }
    let read = tokio::time::timeout(
        REDIS_TIMEOUT,
        pipe.query_async::<Vec<HashMap<String, String>>>(redis),
    )
    .await;
    let Ok(Ok(entries)) = read else {
        return;
    };
    let mut expired = redis::pipe();
    for (instance, fields) in listed.iter().zip(entries) {
        if fields.is_empty() {
            tell_hub(state, others.gone(instance));
            expired.srem(&names.instances, instance).ignore();
        } else {
            apply_entry(state, others, instance, fields);
        }
    }
    let _ = tokio::time::timeout(REDIS_TIMEOUT, expired.query_async::<()>(redis)).await;
}

/// Rereads one instance's entry (its event could not be applied).
async fn reread(
    state: &AppState,
    redis: &mut ConnectionManager,
    names: &Names,
    instance: &str,
    others: &mut ClusterPresence,
) {
    let read = tokio::time::timeout(
        REDIS_TIMEOUT,
        redis::cmd("HGETALL")
            .arg(names.entry(instance))
            .query_async::<HashMap<String, String>>(redis),
    )
    .await;
    match read {
        Ok(Ok(fields)) if fields.is_empty() => tell_hub(state, others.gone(instance)),
        Ok(Ok(fields)) => apply_entry(state, others, instance, fields),
        // The next heartbeat's reconcile reads it again.
        _ => {}
    }
}

fn apply_entry(
    state: &AppState,
    others: &mut ClusterPresence,
    instance: &str,
    mut fields: HashMap<String, String>,
) {
    let run = fields.remove("#run").unwrap_or_default();
    let seq = fields
        .remove("#seq")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let users = fields
        .into_values()
        .filter_map(|name| Username::parse(&name).ok())
        .collect();
    tell_hub(state, others.snapshot(instance, &run, seq, users));
}

fn tell_hub(state: &AppState, flips: Vec<Flip>) {
    for f in flips {
        state.hub.remote_presence(&f.user, f.online);
    }
}

/// A random id for this process's presence entry.
fn run_id() -> String {
    let mut raw = [0u8; 8];
    if getrandom::fill(&mut raw).is_err() {
        // Not secret, only distinct: the clock will do.
        raw = Timestamp::now().unix_millis().to_le_bytes();
    }
    hex(&raw)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
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
