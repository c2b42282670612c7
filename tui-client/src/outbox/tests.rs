//! The outbox file: its records survive what a crash, a hand edit or an older natter leaves.
use super::*;

/// A message to everyone with client_id `id` (the other tests of the crate use it too).
pub(crate) fn out(id: &str) -> Outgoing {
    Outgoing {
        client_id: ClientId::parse(id).unwrap(),
        receiver: None,
        text: format!("text {id}"),
        typed_at: None,
    }
}

#[test]
fn unreadable_lines_are_kept_but_not_sent() {
    let dir = tempfile::tempdir().unwrap();
    let ob = Outbox::new(dir.path(), &Username::parse("alice").unwrap());
    ob.push(&out("a")).unwrap();
    let damaged = "{\"client_id\":\"x\",\"text\": oops";
    let mut text = std::fs::read_to_string(ob.path()).unwrap();
    text.push_str(damaged);
    text.push('\n');
    std::fs::write(ob.path(), text).unwrap();
    ob.push(&out("b")).unwrap();
    ob.remove(&ClientId::parse("a").unwrap()).unwrap();
    let ids: Vec<_> = ob
        .entries()
        .unwrap()
        .into_iter()
        .map(|e| e.client_id.to_string())
        .collect();
    assert_eq!(ids, ["b"]);
    let text = std::fs::read_to_string(ob.path()).unwrap();
    assert!(text.lines().any(|l| l == damaged), "{text}");
}

#[test]
fn keeps_order_survives_reopen_and_ignores_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let alice = Username::parse("alice").unwrap();
    let ob = Outbox::new(dir.path(), &alice);
    for id in ["a", "b", "c", "b"] {
        ob.push(&out(id)).unwrap();
    }
    ob.remove(&ClientId::parse("b").unwrap()).unwrap();
    let reopened = Outbox::new(dir.path(), &Username::parse("ALICE").unwrap());
    let ids: Vec<_> = reopened
        .entries()
        .unwrap()
        .into_iter()
        .map(|e| e.client_id.to_string())
        .collect();
    assert_eq!(ids, ["a", "c"]);
}

#[test]
fn records_without_a_typed_time_still_load() {
    let dir = tempfile::tempdir().unwrap();
    let ob = Outbox::new(dir.path(), &Username::parse("alice").unwrap());
    std::fs::write(
        ob.path(),
        "{\"client_id\":\"old\",\"receiver\":null,\"text\":\"from before\"}\n",
    )
    .unwrap();
    let typed = Outgoing {
        typed_at: Some(Timestamp::from_unix_millis(1_795_512_120_000)),
        ..out("new")
    };
    ob.push(&typed).unwrap();
    let entries = ob.entries().unwrap();
    assert_eq!(entries[0].text, "from before");
    assert_eq!(entries[0].typed_at, None);
    assert_eq!(entries[1], typed);
    let text = std::fs::read_to_string(ob.path()).unwrap();
    assert!(
        text.lines().next().is_some_and(|l| !l.contains("typed_at")),
        "{text}"
    );
    assert!(
        text.contains("\"typed_at\":\"2026-11-24T09:22:00.000Z\""),
        "{text}"
    );
}

fn ids(ob: &Outbox) -> Vec<String> {
    ob.entries()
        .unwrap()
        .into_iter()
        .map(|e| e.client_id.to_string())
        .collect()
}

/// A crash in the middle of an append leaves a torn last record: it is ignored, and the
/// next append cuts it off rather than gluing a record to it.
#[test]
fn an_append_after_a_torn_record_starts_on_a_line_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let ob = Outbox::new(dir.path(), &Username::parse("alice").unwrap());
    ob.push(&out("a")).unwrap();
    let whole = std::fs::read(ob.path()).unwrap();
    let torn = Record::Add(out("b")).line();
    let mut bytes = whole.clone();
    bytes.extend_from_slice(&torn.as_bytes()[..torn.len() / 2]);
    std::fs::write(ob.path(), &bytes).unwrap();
    assert_eq!(ids(&ob), ["a"], "the torn record is not read");
    ob.push(&out("c")).unwrap();
    assert_eq!(ids(&ob), ["a", "c"]);
    let text = std::fs::read_to_string(ob.path()).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
}

/// An outbox of the format before the log (one object per waiting message) reads as it
/// did, and the first read rewrites it as a log.
#[test]
fn an_old_outbox_is_migrated_on_first_read() {
    let dir = tempfile::tempdir().unwrap();
    let ob = Outbox::new(dir.path(), &Username::parse("alice").unwrap());
    std::fs::write(
        ob.path(),
        "{\"client_id\":\"o1\",\"receiver\":null,\"text\":\"one\"}\n{\"client_id\":\"o2\",\"receiver\":\"bob\",\"text\":\"two\",\"typed_at\":\"2026-11-24T09:22:00.000Z\"}\n",
    )
    .unwrap();
    assert_eq!(ids(&ob), ["o1", "o2"]);
    let text = std::fs::read_to_string(ob.path()).unwrap();
    assert!(
        text.lines().all(|l| l.starts_with("{\"op\":\"add\"")),
        "{text}"
    );
    let entries = ob.entries().unwrap();
    assert_eq!(entries[1].receiver, Some(Username::parse("bob").unwrap()));
    assert!(entries[1].typed_at.is_some());
}

/// Once done records outnumber waiting messages (and are enough to matter), a read
/// rewrites the log with only what waits, the unreadable lines kept after it.
#[test]
fn the_log_is_compacted_when_mostly_dead() {
    let dir = tempfile::tempdir().unwrap();
    let ob = Outbox::new(dir.path(), &Username::parse("alice").unwrap());
    ob.push(&out("keep")).unwrap();
    std::fs::write(
        ob.path(),
        format!(
            "{}not a record\n",
            std::fs::read_to_string(ob.path()).unwrap()
        ),
    )
    .unwrap();
    for i in 0..COMPACT_MIN_DEAD {
        let id = format!("m{i}");
        ob.push(&out(&id)).unwrap();
        ob.remove(&ClientId::parse(&id).unwrap()).unwrap();
    }
    let before = std::fs::read_to_string(ob.path()).unwrap().lines().count();
    assert_eq!(before, 2 + 2 * COMPACT_MIN_DEAD);
    assert_eq!(ids(&ob), ["keep"]);
    let text = std::fs::read_to_string(ob.path()).unwrap();
    assert_eq!(text.lines().collect::<Vec<_>>().len(), 2, "{text}");
    assert!(text.ends_with("not a record\n"), "{text}");
}

/// The watch tells a write by someone else (an append, a compaction that replaced the
/// file) from none, and our own appends do not count as someone else's.
#[test]
fn the_watch_sees_others_writes_but_not_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let ob = Outbox::new(dir.path(), &Username::parse("alice").unwrap());
    let mut watch = ob.load().unwrap().watch;
    assert!(!watch.changed(ob.path()), "no file, and still none");
    ob.append(&[Record::Add(out("mine"))], Some(&mut watch))
        .unwrap();
    assert!(!watch.changed(ob.path()), "our own append");
    ob.push(&out("theirs")).unwrap();
    assert!(watch.changed(ob.path()), "another's append");
    let mut watch = ob.load().unwrap().watch;
    ob.append(&[Record::Add(out("mine2"))], Some(&mut watch))
        .unwrap();
    assert!(!watch.changed(ob.path()));
    // A compaction by someone else: a new file of its own at the path.
    let live = ob.entries().unwrap();
    let replay = log::Replay {
        live,
        ..log::Replay::default()
    };
    paths::with_lock(ob.path(), || ob.compact(&replay)).unwrap();
    assert!(watch.changed(ob.path()), "replaced");
}

#[test]
fn token_outboxes_are_stable_and_never_a_users() {
    let dir = Path::new("/x");
    let t = Outbox::for_token(dir, "secret-token");
    assert_eq!(t.path(), Outbox::for_token(dir, "secret-token").path());
    assert_ne!(t.path(), Outbox::for_token(dir, "other-token").path());
    let name = t.path().file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with("@token-") && !name.contains("secret"),
        "{name}"
    );
    assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
}
