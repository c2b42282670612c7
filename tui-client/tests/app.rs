//! The app's state machine without a terminal: connection states, outbox order and retry,
//! dedupe by id, scroll pinning, commands, completion, paste.

mod common {
    pub mod app;
}

use std::time::Duration;

use common::app::*;
use natter::app::Focus;
use natter::app::Scroll;
use natter::msg::{Cmd, Link, Msg, NetEvent};
use natter::outbox::Outgoing;
use natter_shared::protocol::UserStatus;
use natter_shared::{ClientId, MessageId};

fn sent(cmd: Option<Cmd>) -> Outgoing {
    match cmd {
        Some(Cmd::Send { outgoing, .. }) => outgoing,
        other => panic!("expected a send, got {other:?}"),
    }
}

/// The network task's word that `outgoing` waits in alice's outbox, after `after`.
fn queued(outgoing: Outgoing, after: Option<&ClientId>) -> NetEvent {
    NetEvent::Queued {
        sender: user("alice"),
        outgoing,
        after: after.cloned(),
    }
}

fn say(app: &mut natter::app::App, text: &str) -> Outgoing {
    typed(app, text);
    sent(app.update(Msg::Submit))
}

/// Entering a name asks to log in; the badge then follows every reported state.
#[test]
fn connection_states_follow_net_events() {
    let mut app = app_sized(80, 24);
    assert_eq!(app.link, Link::Idle);
    typed(&mut app, "alice");
    assert_eq!(
        app.update(Msg::Submit),
        Some(Cmd::Login {
            username: user("alice"),
            password: None
        })
    );
    assert_eq!(app.link, Link::Connecting);
    assert_eq!(app.focus, Focus::Message);
    for link in [
        Link::Live,
        Link::Reconnecting,
        Link::Offline,
        Link::Fallback,
        Link::Live,
    ] {
        net(
            &mut app,
            NetEvent::Link {
                link,
                retry_in: Some(Duration::from_secs(4)),
            },
        );
        assert_eq!(app.link, link);
    }
    net(
        &mut app,
        NetEvent::Link {
            link: Link::Reconnecting,
            retry_in: Some(Duration::from_millis(3100)),
        },
    );
    assert_eq!(app.retry_secs(), Some(4));
    let now = app.now;
    app.update(Msg::Tick(now + Duration::from_secs(1)));
    assert_eq!(app.retry_secs(), Some(3));
    app.update(Msg::Tick(now + Duration::from_secs(10)));
    assert_eq!(app.retry_secs(), Some(0));
}

/// Sends get increasing client ids and stay pending, in order, until their echo arrives;
/// an echo confirms only its own send.
#[test]
fn outbox_order_and_confirmation() {
    let mut app = alice();
    let a = say(&mut app, "one");
    let b = say(&mut app, "two");
    let c = say(&mut app, "three");
    assert_eq!(
        [
            a.client_id.as_str(),
            b.client_id.as_str(),
            c.client_id.as_str()
        ],
        ["t-1", "t-2", "t-3"]
    );
    let pending: Vec<_> = app
        .timeline
        .pending()
        .iter()
        .map(|p| p.outgoing.text.as_str())
        .collect();
    assert_eq!(pending, ["one", "two", "three"]);

    let mut echo = message(7, "alice", None, "two");
    echo.client_id = Some(b.client_id.clone());
    net(&mut app, NetEvent::Message(echo));
    let pending: Vec<_> = app
        .timeline
        .pending()
        .iter()
        .map(|p| p.outgoing.text.as_str())
        .collect();
    assert_eq!(pending, ["one", "three"]);
    assert_eq!(app.timeline.messages().len(), 1);
    assert_eq!(app.timeline.waiting(), 2);
}

/// A send just typed is shown at once but not counted queued until the outbox keeper says
/// it is on disk; the keeper's word changes nothing else.
#[test]
fn a_send_counts_queued_once_on_disk() {
    let mut app = alice();
    let o = say(&mut app, "one");
    assert_eq!((app.timeline.waiting(), app.timeline.queued()), (1, 0));
    assert!(!app.timeline.pending()[0].saved);
    net(&mut app, queued(o.clone(), None));
    assert_eq!((app.timeline.waiting(), app.timeline.queued()), (1, 1));
    assert!(app.timeline.pending()[0].saved);
    // Another identity's (typed before a change of name) is not this one's to show.
    net(
        &mut app,
        NetEvent::Queued {
            sender: user("bob"),
            outgoing: Outgoing {
                client_id: client_id("b-1"),
                ..o
            },
            after: None,
        },
    );
    assert_eq!(app.timeline.pending().len(), 1);
}

/// After a restart the outbox read from disk comes first, in its order, then what was
/// typed since; a retry that the server already stored confirms by client_id.
#[test]
fn outbox_from_disk_then_retry_confirms() {
    let mut app = alice();
    let typed_now = say(&mut app, "typed now");
    let old = |id: &str, text: &str| Outgoing {
        client_id: client_id(id),
        receiver: None,
        text: text.into(),
        typed_at: None,
    };
    // As the network task reports what it loaded: each after the one before it.
    net(&mut app, queued(old("x-1", "first"), None));
    net(
        &mut app,
        queued(old("x-2", "second"), Some(&client_id("x-1"))),
    );
    let order: Vec<_> = app
        .timeline
        .pending()
        .iter()
        .map(|p| p.outgoing.client_id.to_string())
        .collect();
    assert_eq!(order, ["x-1", "x-2", typed_now.client_id.as_str()]);

    // The retry of x-1 was stored before (id 3): the server echoes the first copy.
    let mut echo = message(3, "alice", None, "first");
    echo.client_id = Some(client_id("x-1"));
    net(&mut app, NetEvent::Message(echo.clone()));
    net(&mut app, NetEvent::Message(echo));
    assert_eq!(app.timeline.messages().len(), 1);
    assert_eq!(app.timeline.pending().len(), 2);
}

/// Entries another process left in the outbox, reported while the screen runs, are shown
/// queued at their place in the outbox's order; a refused send stays refused, and nothing
/// already shown appears twice.
#[test]
fn outbox_entries_learnt_later_take_their_place() {
    let mut app = alice();
    let refused = say(&mut app, "/msg nobody hi");
    net(
        &mut app,
        NetEvent::Rejected {
            client_id: refused.client_id.clone(),
            reason: "no such user".into(),
        },
    );
    let mine = say(&mut app, "mine");
    let later = say(&mut app, "later");
    let from_send = |id: &str| Outgoing {
        client_id: client_id(id),
        receiver: None,
        text: format!("left by natter send {id}"),
        typed_at: None,
    };
    // In the file, `send`'s first entry came before mine, its second between mine and
    // the later one.
    net(&mut app, queued(from_send("s-1"), None));
    net(&mut app, queued(from_send("s-2"), Some(&mine.client_id)));
    let shown: Vec<_> = app
        .timeline
        .pending()
        .iter()
        .map(|p| (p.outgoing.text.as_str(), p.failed.is_some()))
        .collect();
    assert_eq!(
        shown,
        [
            ("left by natter send s-1", false),
            ("hi", true),
            ("mine", false),
            ("left by natter send s-2", false),
            ("later", false),
        ]
    );
    assert_eq!(app.timeline.waiting(), 4);
    net(&mut app, queued(from_send("s-1"), None));
    assert_eq!(app.timeline.pending().len(), 5);
    let _ = later;
}

/// A refused send leaves the queue count but stays visible with its reason.
#[test]
fn refused_send_is_marked() {
    let mut app = alice();
    let o = say(&mut app, "/msg nobody hi");
    assert_eq!(o.receiver, Some(user("nobody")));
    net(
        &mut app,
        NetEvent::Rejected {
            client_id: o.client_id,
            reason: "no such user".into(),
        },
    );
    assert_eq!(app.timeline.waiting(), 0);
    assert_eq!(
        app.timeline.pending()[0].failed.as_deref(),
        Some("no such user")
    );
}

/// Messages are shown once each, in id order, however they arrive.
#[test]
fn dedupe_by_id_and_id_order() {
    let mut app = alice();
    net(
        &mut app,
        NetEvent::Messages(vec![
            message(1, "bob", None, "a"),
            message(3, "bob", None, "c"),
        ]),
    );
    net(&mut app, NetEvent::Message(message(3, "bob", None, "c")));
    net(&mut app, NetEvent::Message(message(2, "bob", None, "b")));
    net(
        &mut app,
        NetEvent::Messages(vec![
            message(1, "bob", None, "a"),
            message(2, "bob", None, "b"),
            message(4, "bob", None, "d"),
        ]),
    );
    let ids: Vec<_> = app.timeline.messages().iter().map(|m| m.id).collect();
    assert_eq!(ids, [1, 2, 3, 4].map(MessageId));
    assert_eq!(app.timeline.last_id(), Some(MessageId(4)));
}

fn fill(app: &mut natter::app::App, n: i64) {
    net(
        app,
        NetEvent::Messages(
            (1..=n)
                .map(|i| message(i, "bob", None, &format!("m{i}")))
                .collect(),
        ),
    );
}

/// At the bottom the view follows new messages; scrolled up it stays put and counts them;
/// End (or scrolling back down) pins it again.
#[test]
fn scroll_pinning() {
    let mut app = alice_sized(80, 24);
    fill(&mut app, 100);
    assert_eq!(app.scroll, Scroll::Bottom);
    net(
        &mut app,
        NetEvent::Message(message(101, "bob", None, "new")),
    );
    assert_eq!(app.scroll, Scroll::Bottom);
    assert_eq!(app.unseen, 0);

    app.update(Msg::PageUp);
    let Scroll::At { item, .. } = app.scroll else {
        panic!("still pinned")
    };
    net(
        &mut app,
        NetEvent::Message(message(102, "bob", None, "newer")),
    );
    assert_eq!(app.scroll, Scroll::At { item, line: 0 });
    assert_eq!(app.unseen, 1);

    app.update(Msg::PageDown);
    app.update(Msg::PageDown);
    assert_eq!(app.scroll, Scroll::Bottom);
    assert_eq!(app.unseen, 0);

    app.update(Msg::ScrollTop);
    assert_eq!(app.scroll, Scroll::At { item: 0, line: 0 });
    app.update(Msg::ScrollUp(5));
    assert_eq!(app.scroll, Scroll::At { item: 0, line: 0 });
    app.update(Msg::ScrollBottom);
    assert_eq!(app.scroll, Scroll::Bottom);

    // Sending always brings the view back to the bottom.
    app.update(Msg::ScrollUp(3));
    say(&mut app, "hello");
    assert_eq!(app.scroll, Scroll::Bottom);
}

/// A late message inserted above the anchor keeps the same lines in view.
#[test]
fn late_message_above_the_view_keeps_it_steady() {
    let mut app = alice_sized(80, 24);
    net(
        &mut app,
        NetEvent::Messages((10..=60).map(|i| message(i, "bob", None, "x")).collect()),
    );
    app.update(Msg::ScrollTop);
    app.update(Msg::ScrollDown(5));
    assert_eq!(app.scroll, Scroll::At { item: 5, line: 0 });
    net(&mut app, NetEvent::Message(message(1, "bob", None, "late")));
    assert_eq!(app.scroll, Scroll::At { item: 6, line: 0 });
}

/// Anchored partway into a wrapped message, with more than a screenful below, the view is
/// not pinned: it used to be whenever the lines from the anchor's item overfilled the view by
/// no more than the anchor's line, so Page Down from the top could jump to the bottom.
#[test]
fn anchor_inside_a_wrapped_message_stays_put() {
    let mut app = alice_sized(80, 24);
    let long = "word ".repeat(40);
    let mut batch = vec![message(1, "bob", None, "a"), message(2, "bob", None, &long)];
    batch.extend((3..=100).map(|i| message(i, "bob", None, "x")));
    net(&mut app, NetEvent::Messages(batch));
    assert_eq!(app.item_height(1, 80), 3);
    app.update(Msg::ScrollTop);
    app.update(Msg::ScrollDown(2));
    assert_eq!(app.scroll, Scroll::At { item: 1, line: 1 });
    app.update(Msg::ScrollTop);
    app.update(Msg::PageDown);
    assert!(matches!(app.scroll, Scroll::At { .. }), "{:?}", app.scroll);
}

/// 100,000 messages: scrolling and drawing only touch the visible part.
#[test]
fn a_hundred_thousand_messages_scroll() {
    let mut app = alice_sized(80, 24);
    fill(&mut app, 100_000);
    let screen = render(&app);
    assert!(screen.contains("m100000"));
    for _ in 0..50 {
        app.update(Msg::PageUp);
    }
    app.update(Msg::ScrollTop);
    assert!(render(&app).contains("bob: m1 "));
    app.update(Msg::ScrollBottom);
    assert!(render(&app).contains("m100000"));
}

/// Slash commands: /to, /all, /msg, /nick, /help, /quit, unknown, and // escapes.
#[test]
fn slash_commands() {
    let mut app = alice();
    typed(&mut app, "/to bob");
    assert_eq!(app.update(Msg::Submit), None);
    assert_eq!(app.to.text(), "bob");
    assert_eq!(say(&mut app, "psst").receiver, Some(user("bob")));
    typed(&mut app, "/all");
    app.update(Msg::Submit);
    assert!(app.to.is_empty());
    assert_eq!(say(&mut app, "hi all").receiver, None);

    let dm = say(&mut app, "/msg carol just you");
    assert_eq!(
        (dm.receiver, dm.text.as_str()),
        (Some(user("carol")), "just you")
    );
    assert!(app.to.is_empty(), "/msg does not change Send to");

    assert_eq!(say(&mut app, "//shrug").text, "/shrug");

    typed(&mut app, "/frobnicate");
    assert_eq!(app.update(Msg::Submit), None);
    assert_eq!(
        app.input.text(),
        "/frobnicate",
        "a mistake keeps what was typed"
    );
    app.input.take();

    typed(&mut app, "/help");
    app.update(Msg::Submit);
    assert!(app.show_help);
    app.update(Msg::Escape);
    assert!(!app.show_help);

    typed(&mut app, "/nick bob");
    assert_eq!(
        app.update(Msg::Submit),
        Some(Cmd::Login {
            username: user("bob"),
            password: None
        })
    );
    assert!(
        app.timeline.is_empty(),
        "another identity sees other messages"
    );

    typed(&mut app, "/quit");
    assert_eq!(app.update(Msg::Submit), Some(Cmd::Quit));
    assert!(app.should_quit);
}

/// Tab in Send to completes from known users and cycles; with nothing to complete it
/// moves focus.
#[test]
fn tab_completes_usernames_in_send_to() {
    let mut app = alice();
    net(
        &mut app,
        NetEvent::Users(
            ["bob", "bobby", "carol"]
                .map(|n| UserStatus {
                    username: user(n),
                    online: true,
                })
                .to_vec(),
        ),
    );
    app.update(Msg::BackTab);
    assert_eq!(app.focus, Focus::SendTo);
    typed(&mut app, "bo");
    app.update(Msg::Tab);
    assert_eq!(app.to.text(), "bob");
    app.update(Msg::Tab);
    assert_eq!(app.to.text(), "bobby");
    app.update(Msg::Tab);
    assert_eq!(app.to.text(), "bob");
    assert_eq!(app.focus, Focus::SendTo);
    app.update(Msg::Char('b'));
    app.update(Msg::Tab);
    assert_eq!(
        app.to.text(),
        "bobby",
        "a new prefix starts a new completion"
    );
    app.update(Msg::DeleteToStart);
    typed(&mut app, "carol");
    app.update(Msg::Tab);
    assert_eq!(app.focus, Focus::Message, "a complete name: Tab moves on");
}

/// A multi-line paste is one message, sent whole on Enter.
#[test]
fn paste_is_one_message() {
    let mut app = alice();
    app.update(Msg::Paste("line one\r\nline two\nline three".into()));
    let o = sent(app.update(Msg::Submit));
    assert_eq!(o.text, "line one\nline two\nline three");
    assert_eq!(app.timeline.pending().len(), 1);
}

/// Without a name nothing is sent and nothing typed is lost.
#[test]
fn send_without_a_name_keeps_the_text() {
    let mut app = app_sized(80, 24);
    app.focus = Focus::Message;
    typed(&mut app, "hello?");
    assert_eq!(app.update(Msg::Submit), None);
    assert_eq!(app.input.text(), "hello?");
    assert_eq!(app.focus, Focus::Name);
}

/// Invalid input is refused before it leaves: whitespace, control characters, bad names.
#[test]
fn invalid_input_is_refused_locally() {
    let mut app = alice();
    typed(&mut app, "   ");
    assert_eq!(app.update(Msg::Submit), None);
    app.to.set("not a name");
    typed(&mut app, "hi");
    assert_eq!(app.update(Msg::Submit), None);
    assert_eq!(app.input.text(), "hi");
    assert!(app.status.is_some());
}

/// The taken-name flow: prompt, masked password, Login with it; Esc backs out.
#[test]
fn password_prompt_flow() {
    let mut app = app_sized(80, 24);
    typed(&mut app, "bob");
    app.update(Msg::Submit);
    net(
        &mut app,
        NetEvent::PasswordNeeded {
            username: user("bob"),
            reason: "taken".into(),
        },
    );
    assert_eq!(app.focus, Focus::Message);
    typed(&mut app, "short");
    assert_eq!(app.update(Msg::Submit), None, "too short to be a password");
    typed(&mut app, "long enough");
    assert_eq!(
        app.update(Msg::Submit),
        Some(Cmd::Login {
            username: user("bob"),
            password: Some("long enough".into())
        })
    );
    assert!(app.prompt.is_none());
    assert!(
        app.input.is_empty(),
        "the password never lands in the message input"
    );
    app.update(Msg::Older);
    assert!(app.input.is_empty(), "nor in the recalled lines");

    net(
        &mut app,
        NetEvent::PasswordNeeded {
            username: user("bob"),
            reason: "wrong password".into(),
        },
    );
    app.update(Msg::Escape);
    assert!(app.prompt.is_none());
    assert_eq!(app.focus, Focus::Name);
}

/// Changing the Name field and leaving it with Tab does not log in (one stray key would
/// register an account): the typed name stays in the field, not applied, and the status
/// line says Enter applies it. Enter in the field then logs in as it.
#[test]
fn leaving_a_changed_name_field_does_not_log_in() {
    let mut app = alice();
    app.focus = Focus::Name;
    app.update(Msg::DeleteToStart);
    app.update(Msg::LineEnd);
    app.update(Msg::DeleteWord);
    typed(&mut app, "carol");
    assert_eq!(app.update(Msg::Tab), None, "Tab only moves focus");
    assert_eq!(app.focus, Focus::SendTo);
    assert_eq!(
        app.name.text(),
        "carol",
        "what was typed stays in the field"
    );
    assert_eq!(app.identity, Some(user("alice")), "still alice");
    assert!(app.name_is_pending());
    let (_, status) = app.status.clone().unwrap();
    assert!(status.contains("Enter"), "says how to apply it: {status}");
    assert_eq!(
        app.update(Msg::BackTab),
        None,
        "Shift-Tab back into Name: nothing"
    );
    assert_eq!(app.focus, Focus::Name);
    assert_eq!(
        app.update(Msg::Submit),
        Some(Cmd::Login {
            username: user("carol"),
            password: None
        })
    );
    assert!(!app.name_is_pending());
}

/// Up and Down in the message field walk the lines sent before (commands too) and come back
/// to what was being typed; in another field they scroll.
#[test]
fn up_and_down_recall_sent_lines() {
    let mut app = alice();
    say(&mut app, "first");
    typed(&mut app, "/to bob");
    app.update(Msg::Submit);
    typed(&mut app, "half-typed");
    app.update(Msg::Older);
    assert_eq!(app.input.text(), "/to bob");
    app.update(Msg::Older);
    assert_eq!(app.input.text(), "first");
    app.update(Msg::Older);
    assert_eq!(app.input.text(), "first", "nothing older");
    app.update(Msg::Newer);
    assert_eq!(app.input.text(), "/to bob");
    app.update(Msg::Newer);
    assert_eq!(app.input.text(), "half-typed", "the draft comes back");
    // A recalled line is sent like a typed one.
    app.update(Msg::Older);
    app.update(Msg::Older);
    assert_eq!(sent(app.update(Msg::Submit)).text, "first");

    fill(&mut app, 200);
    app.focus = Focus::Name;
    app.update(Msg::Older);
    assert_ne!(
        app.scroll,
        natter::app::Scroll::Bottom,
        "Up scrolls outside the message field"
    );
}
