//! The hub's unit tests: targeting, lag and catch-up, presence.

use natter_shared::{Message, MessageId, Timestamp, Username};

use super::*;

fn name(s: &str) -> Username {
    Username::parse(s).unwrap()
}

fn msg(id: i64, from: &str, to: Option<&str>) -> Message {
    Message {
        id: MessageId(id),
        sender_username: name(from),
        receiver_username: to.map(name),
        text: "hi".into(),
        created_at: Timestamp::now(),
        client_id: None,
    }
}

/// What is queued: `Some(id)` for a message, `None` for a presence frame.
fn drain(s: &mut Subscription) -> Vec<Option<MessageId>> {
    std::iter::from_fn(|| s.rx.try_recv().ok())
        .map(|o| match o {
            Outbound::Message { id, .. } => Some(id),
            Outbound::Presence { .. } => None,
        })
        .collect()
}

/// A direct message reaches both parties' connections and no one else's.
#[test]
fn direct_messages_reach_only_their_parties() {
    let hub = Hub::new(16, 1 << 20);
    let mut a1 = hub.register(&name("alice"));
    let mut a2 = hub.register(&name("Alice"));
    let mut b = hub.register(&name("bob"));
    let mut c = hub.register(&name("carol"));
    for s in [&mut a1, &mut a2, &mut b, &mut c] {
        drain(s);
    }
    hub.publish(&[msg(1, "alice", Some("BOB")), msg(2, "carol", None)]);
    let some = |ids: &[i64]| ids.iter().map(|i| Some(MessageId(*i))).collect::<Vec<_>>();
    assert_eq!(drain(&mut a1), some(&[1, 2]));
    assert_eq!(drain(&mut a2), some(&[1, 2]));
    assert_eq!(drain(&mut b), some(&[1, 2]));
    assert_eq!(drain(&mut c), some(&[2]));
}

/// A full queue marks the connection lagging and wakes it; it gets no message after the
/// miss until it has caught up, and then gets the presence changes it missed, the newest
/// per user, and live delivery again.
#[test]
fn full_queue_lags_until_caught_up() {
    let hub = Hub::new(2, 1 << 20);
    let mut slow = hub.register(&name("slow"));
    drain(&mut slow);
    hub.publish(&[msg(1, "x", None), msg(2, "x", None), msg(3, "x", None)]);
    assert_eq!(
        drain(&mut slow),
        vec![Some(MessageId(1)), Some(MessageId(2))]
    );
    // The miss woke the connection (a stored permit: this resolves at once).
    let woke = futures_util::FutureExt::now_or_never(slow.lagged.notified());
    assert!(woke.is_some(), "lagging connection was notified");
    hub.publish(&[msg(4, "x", None)]);
    let bob = hub.register(&name("bob"));
    hub.unregister(&name("bob"), bob.id);
    let carol = hub.register(&name("carol"));
    assert!(drain(&mut slow).is_empty(), "nothing queued while lagging");
    // Catching up from after 2: a first page, then the rest, which ends the lag and
    // brings the presence changes missed, the newest per user.
    let CatchUp::Recent {
        frames,
        through,
        caught_up,
        ..
    } = hub.catch_up(&name("slow"), slow.id, MessageId(2), 1)
    else {
        panic!("the recent frames reach back to 2");
    };
    assert_eq!((frames.len(), through, caught_up), (1, MessageId(3), false));
    let CatchUp::Recent {
        frames,
        presence,
        through,
        caught_up,
    } = hub.catch_up(&name("slow"), slow.id, through, 10)
    else {
        panic!("the recent frames reach back to 3");
    };
    assert!(caught_up);
    assert_eq!((frames.len(), through), (1, MessageId(4)));
    let mut missed: Vec<String> = presence
        .iter()
        .map(|o| o.frame().to_text().unwrap().to_owned())
        .collect();
    missed.sort();
    assert_eq!(missed.len(), 2, "one frame per user: {missed:?}");
    assert!(missed[0].contains("bob") && missed[0].contains("false"));
    assert!(missed[1].contains("carol") && missed[1].contains("true"));
    hub.publish(&[msg(5, "x", None)]);
    assert_eq!(drain(&mut slow), vec![Some(MessageId(5))]);
    let late = hub.register(&name("late"));
    assert_eq!(late.live_after, MessageId(5));
    drop(carol);
}

/// A connection registered to catch up (a replay) is queued nothing, not even presence,
/// until its last catch-up page, which hands over the presence it missed separately from
/// the messages (the connection sends it after `ready`).
#[test]
fn replaying_connection_is_queued_nothing_until_caught_up() {
    let hub = Hub::new(16, 1 << 20);
    let mut carol = hub.register_catching_up(&name("carol"));
    hub.publish(&[msg(1, "x", None)]);
    let bob = hub.register(&name("bob"));
    hub.publish(&[msg(2, "x", None)]);
    hub.unregister(&name("bob"), bob.id);
    assert!(
        drain(&mut carol).is_empty(),
        "nothing queued during the replay"
    );
    let CatchUp::Recent {
        frames,
        presence,
        caught_up,
        ..
    } = hub.catch_up(&name("carol"), carol.id, MessageId(0), 10)
    else {
        panic!("the recent frames reach back to 0");
    };
    assert!(caught_up);
    assert_eq!(frames.len(), 2);
    assert_eq!(presence.len(), 1, "bob's newest status only");
    assert!(presence[0].frame().to_text().unwrap().contains("false"));
    hub.publish(&[msg(3, "x", None)]);
    assert_eq!(drain(&mut carol), vec![Some(MessageId(3))], "live again");
}

/// With a bus, presence is the union over instances: frames only when it flips, and an
/// offline frame waits out the grace, cancelled (both frames) by a return within it.
#[test]
fn cluster_presence_is_the_union_and_offline_waits_for_the_grace() {
    let (tx, mut reports) = tokio::sync::mpsc::unbounded_channel();
    let hub = Hub::new(16, 1 << 20).reporting_presence(Some(tx));
    let mut w = hub.register(&name("w"));
    drain(&mut w);
    hub.remote_presence(&name("bob"), true);
    assert_eq!(drain(&mut w).len(), 1, "bob online elsewhere");
    let b = hub.register(&name("bob"));
    assert!(drain(&mut w).is_empty(), "already online");
    assert!(hub.is_online(&name("bob")));
    hub.remote_presence(&name("bob"), false);
    hub.unregister(&name("bob"), b.id);
    hub.flush_leaving();
    assert!(drain(&mut w).is_empty(), "offline waits for the grace");
    // Back elsewhere within the grace: nothing was ever said.
    hub.remote_presence(&name("bob"), true);
    std::thread::sleep(OFFLINE_GRACE);
    hub.flush_leaving();
    assert!(drain(&mut w).is_empty());
    hub.remote_presence(&name("bob"), false);
    std::thread::sleep(OFFLINE_GRACE);
    hub.flush_leaving();
    assert_eq!(drain(&mut w).len(), 1, "offline once the grace ran out");
    let reported: Vec<(String, bool)> = std::iter::from_fn(|| reports.try_recv().ok())
        .map(|r| (r.user.key(), r.online))
        .collect();
    assert_eq!(
        reported,
        [
            ("w".into(), true),
            ("bob".into(), true),
            ("bob".into(), false)
        ],
        "the hub reports only this instance's own first and last connections"
    );
}

/// Presence is announced on the first connection and the last disconnection only.
#[test]
fn presence_on_first_and_last_connection() {
    let hub = Hub::new(16, 1 << 20);
    let mut watcher = hub.register(&name("w"));
    drain(&mut watcher);
    let a1 = hub.register(&name("a"));
    let a2 = hub.register(&name("a"));
    assert_eq!(drain(&mut watcher).len(), 1);
    hub.unregister(&name("a"), a1.id);
    assert!(drain(&mut watcher).is_empty());
    assert!(hub.is_online(&name("A")));
    hub.unregister(&name("a"), a2.id);
    assert_eq!(drain(&mut watcher).len(), 1);
    assert!(!hub.is_online(&name("a")));
}
