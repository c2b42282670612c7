//! The presence task: this instance's entry in Redis (a hash of its users, kept alive by a
//! heartbeat: killed, it expires within [`PRESENCE_TTL`]), the view of the other instances'
//! entries (its bookkeeping is `bus::presence`'s [`ClusterPresence`]; the Redis reads and
//! writes are here), and the hub told whose presence flipped.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use natter_shared::{Timestamp, Username};
use redis::aio::ConnectionManager;
use tokio::sync::mpsc;

use super::codec::{PresenceEvent, hex};
use super::{FromSubscriber, HEARTBEAT, Names, PRESENCE_BATCH, PRESENCE_TTL, REDIS_TIMEOUT};
use crate::bus::LocalPresence;
use crate::bus::presence::{self as bookkeeping, ClusterPresence, Flip};
use crate::state::AppState;

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
pub(super) async fn presence(
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
                        Err(bookkeeping::Resync)
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
