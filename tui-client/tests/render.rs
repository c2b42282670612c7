//! Snapshots of the chat screen on ratatui's TestBackend. Review `.snap` diffs like code:
//! `cargo insta review` (or `INSTA_UPDATE=always cargo test`) after an intended change.

mod common {
    pub mod app;
}

use std::time::Duration;

use common::app::*;
use natter::msg::{Link, Msg, NetEvent};
use natter::outbox::Outgoing;
use natter_shared::Timestamp;
use natter_shared::protocol::UserStatus;

fn top_line(app: &natter::app::App) -> String {
    let terminal = draw(app);
    let buf = terminal.backend().buffer();
    (0..buf.area.width)
        .map(|x| buf[(x, 0)].symbol().to_owned())
        .collect::<String>()
        .trim_end()
        .to_owned()
}

/// The badge in every state, with the countdown where one is scheduled.
#[test]
fn badge_in_each_state() {
    let mut out = Vec::new();
    let mut app = app_sized(80, 24);
    out.push(top_line(&app));
    app = alice();
    let states = [
        (Link::Connecting, None),
        (Link::Connecting, Some(2)),
        (Link::Live, None),
        (Link::Reconnecting, Some(3)),
        (Link::Reconnecting, None),
        (Link::Fallback, Some(12)),
        (Link::Offline, Some(30)),
    ];
    for (link, secs) in states {
        net(
            &mut app,
            NetEvent::Link {
                link,
                retry_in: secs.map(Duration::from_secs),
            },
        );
        out.push(top_line(&app));
    }
    // The countdown follows the clock.
    net(
        &mut app,
        NetEvent::Link {
            link: Link::Reconnecting,
            retry_in: Some(Duration::from_secs(5)),
        },
    );
    let now = app.now;
    app.update(Msg::Tick(now + Duration::from_millis(2500)));
    out.push(top_line(&app));
    insta::assert_snapshot!(out.join("\n"));
}

fn conversation() -> natter::app::App {
    let mut app = alice();
    net(
        &mut app,
        NetEvent::Messages(vec![
            message(1, "bob", None, "morning all"),
            message(2, "alice", None, "hi bob"),
            message(3, "bob", Some("alice"), "psst, just between us"),
            message(4, "alice", Some("bob"), "sure"),
            message(5, "carol", None, "what are you two whispering about?"),
        ]),
    );
    app
}

/// A full 80×24 screen: group messages, your own, direct messages both ways.
#[test]
fn screen_80x24_with_direct_messages() {
    insta::assert_snapshot!(render(&conversation()));
}

/// The outbox keeper's word that the send typed as `client_id` is on disk.
fn on_disk(app: &mut natter::app::App, id: &str) {
    let outgoing = app
        .timeline
        .pending()
        .iter()
        .find(|p| p.outgoing.client_id.as_str() == id)
        .map(|p| p.outgoing.clone())
        .expect("a send typed with this client_id");
    net(
        app,
        NetEvent::Queued {
            sender: user("alice"),
            outgoing,
            after: None,
        },
    );
}

/// Until the outbox keeper says a send is on disk it shows `◌` where a queued one shows
/// `⋯`, and the top bar does not count it queued.
#[test]
fn a_send_not_yet_on_disk_is_not_shown_queued() {
    let mut app = alice_sized(60, 8);
    typed(&mut app, "being saved");
    app.update(Msg::Submit);
    typed(&mut app, "saved");
    app.update(Msg::Submit);
    on_disk(&mut app, "t-2");
    insta::assert_snapshot!(render(&app));
}

/// Pending sends are listed after the stored messages; a refused one says why.
#[test]
fn pending_and_refused_sends() {
    let mut app = conversation();
    typed(&mut app, "on its way");
    app.update(Msg::Submit);
    typed(&mut app, "/msg nobody hello?");
    app.update(Msg::Submit);
    on_disk(&mut app, "t-1");
    on_disk(&mut app, "t-2");
    net(
        &mut app,
        NetEvent::Rejected {
            client_id: client_id("t-2"),
            reason: "no user named \"nobody\"".into(),
        },
    );
    insta::assert_snapshot!(render(&app));
}

/// Long text wraps at word boundaries with a hanging indent; newlines are kept.
#[test]
fn wrapping() {
    let mut app = alice_sized(40, 16);
    net(
        &mut app,
        NetEvent::Message(message(
            1,
            "bob",
            None,
            "this is a rather long message that has to wrap over several lines\nand a second paragraph",
        )),
    );
    net(
        &mut app,
        NetEvent::Message(message(2, "carol", None, &"x".repeat(70))),
    );
    insta::assert_snapshot!(render(&app));
}

/// Wide characters and emoji take two columns and never spill past the edge.
#[test]
fn wide_characters_and_emoji() {
    let mut app = alice_sized(40, 14);
    net(
        &mut app,
        NetEvent::Message(message(
            1,
            "bob",
            None,
            "日本語のテキストを折り返します、ちゃんと。",
        )),
    );
    net(
        &mut app,
        NetEvent::Message(message(2, "carol", None, "🎉🎉🎉 party 🎂 time 👍🏽 ok")),
    );
    insta::assert_snapshot!(render(&app));
}

/// Wide terminals list the users online beside the messages.
#[test]
fn users_beside_messages_when_wide() {
    let mut app = conversation();
    app.update(Msg::Resize {
        width: 100,
        height: 12,
    });
    net(
        &mut app,
        NetEvent::Users(vec![
            UserStatus {
                username: user("alice"),
                online: true,
            },
            UserStatus {
                username: user("bob"),
                online: true,
            },
            UserStatus {
                username: user("carol"),
                online: false,
            },
        ]),
    );
    net(
        &mut app,
        NetEvent::Presence {
            username: user("carol"),
            online: true,
        },
    );
    net(
        &mut app,
        NetEvent::Presence {
            username: user("bob"),
            online: false,
        },
    );
    insta::assert_snapshot!(render(&app));
}

/// The help lists every key and command, and fits 80×24.
#[test]
fn help() {
    let mut app = alice();
    app.update(Msg::ToggleHelp);
    insta::assert_snapshot!(render(&app));
}

/// Scrolled up: the "N new ↓" marker counts what arrived meanwhile.
#[test]
fn scrolled_up_shows_new_count() {
    let mut app = alice_sized(60, 12);
    for id in 1..=30 {
        net(
            &mut app,
            NetEvent::Message(message(id, "bob", None, &format!("message {id}"))),
        );
    }
    app.update(Msg::PageUp);
    net(
        &mut app,
        NetEvent::Message(message(31, "bob", None, "new one")),
    );
    net(
        &mut app,
        NetEvent::Message(message(32, "bob", None, "another")),
    );
    insta::assert_snapshot!(render(&app));
}

/// The "N new ↓" marker has a row of its own: the end of a long last visible line is not
/// drawn over.
#[test]
fn new_marker_does_not_cover_the_last_line() {
    let mut app = alice_sized(60, 12);
    for id in 1..=30 {
        let text = format!("message {id} is long enough to fill the row up to its end");
        net(&mut app, NetEvent::Message(message(id, "bob", None, &text)));
    }
    app.update(Msg::PageUp);
    net(
        &mut app,
        NetEvent::Message(message(31, "bob", None, "new one")),
    );
    insta::assert_snapshot!(render(&app));
}

/// An error longer than the terminal is wide is not cut at the edge: the status line takes
/// a second row, so the part that says what to do stays visible at 80 columns.
#[test]
fn long_error_keeps_its_advice_visible() {
    let mut app = alice_sized(80, 12);
    for id in 1..=10 {
        net(
            &mut app,
            NetEvent::Message(message(id, "bob", None, &format!("message {id}"))),
        );
    }
    net(
        &mut app,
        NetEvent::Error(
            "cannot reach server at http://127.0.0.1:8000 (connection failed: Connection \
             refused (os error 111)); is natter-server running?"
                .into(),
        ),
    );
    insta::assert_snapshot!(render(&app));
}

/// The name is taken: the message input becomes a masked password prompt.
#[test]
fn password_prompt() {
    let mut app = app_sized(80, 10);
    app.name.set("bob");
    app.update(Msg::Submit);
    net(
        &mut app,
        NetEvent::PasswordNeeded {
            username: user("bob"),
            reason: "the name bob is taken".into(),
        },
    );
    typed(&mut app, "hunter22");
    insta::assert_snapshot!(render(&app));
}

/// The first screen, before any name is given.
#[test]
fn first_start_asks_for_a_name() {
    let mut app = app_sized(80, 10);
    app.start();
    insta::assert_snapshot!(render(&app));
}

/// NO_COLOR: no cell carries a colour, yet own and direct messages still look different.
#[test]
fn no_color_uses_no_colours() {
    let mut app = conversation();
    app.color = false;
    net(
        &mut app,
        NetEvent::Link {
            link: Link::Offline,
            retry_in: None,
        },
    );
    let terminal = draw(&app);
    let buf = terminal.backend().buffer();
    for cell in buf.content() {
        assert_eq!(cell.fg, ratatui::style::Color::Reset, "{cell:?}");
        assert_eq!(cell.bg, ratatui::style::Color::Reset, "{cell:?}");
    }
    // Row 2 is alice's own "hi bob": her name is underlined; bob's on row 1 is not.
    let own = &buf[(6, 2)];
    let other = &buf[(6, 1)];
    assert_ne!(own.modifier, other.modifier);
}

/// Pending messages loaded from the outbox show before anything typed since; one from a
/// record written before natter kept the time it was typed shows `⋯` alone.
#[test]
fn outbox_entries_from_disk_are_shown_pending() {
    let mut app = alice_sized(60, 8);
    typed(&mut app, "typed now");
    app.update(Msg::Submit);
    on_disk(&mut app, "t-1");
    net(
        &mut app,
        NetEvent::Queued {
            sender: user("alice"),
            outgoing: Outgoing {
                client_id: client_id("old-1"),
                receiver: None,
                text: "typed yesterday".into(),
                typed_at: None,
            },
            after: None,
        },
    );
    insta::assert_snapshot!(render(&app));
}

/// A queued message shows, dimmed, the time it was typed and `⋯`; one from an outbox
/// written the day before is headed by that day, so its time is not read as today's. Once
/// delivered, a message shows the server's time like any other.
#[test]
fn a_queued_message_shows_when_it_was_typed() {
    let mut app = alice_sized(80, 12);
    net(
        &mut app,
        NetEvent::Message(message(1, "bob", None, "morning all")),
    );
    typed(&mut app, "on its way");
    app.update(Msg::Submit);
    on_disk(&mut app, "t-1");
    // Left in the outbox last night, at 23:50.
    let last_night = Outgoing {
        client_id: client_id("old-1"),
        receiver: Some(user("bob")),
        text: "typed last night".into(),
        typed_at: Some(Timestamp::from_unix_millis(T0_MS - (9 * 60 + 32) * 60_000)),
    };
    net(
        &mut app,
        NetEvent::Queued {
            sender: user("alice"),
            outgoing: last_night,
            after: None,
        },
    );
    insta::assert_snapshot!(render(&app));

    let mut echo = message(2, "alice", None, "on its way");
    echo.created_at = Timestamp::from_unix_millis(TYPED_MS + 3 * 60_000);
    echo.client_id = Some(client_id("t-1"));
    net(&mut app, NetEvent::Message(echo));
    let screen = render(&app);
    assert!(screen.contains("09:35 alice: on its way"), "{screen}");
    assert!(!screen.contains("09:32"), "{screen}");
}

/// The terminal cursor's position after drawing `app`.
fn cursor(app: &natter::app::App) -> (u16, u16) {
    let p = draw(app).get_cursor_position().unwrap();
    (p.x, p.y)
}

/// A message longer than a row wraps at spaces in the message box, which grows to show all
/// of it (three rows here), taking the rows from the message list; the cursor follows the
/// last character.
#[test]
fn a_long_message_grows_the_input_box_to_three_rows() {
    let mut app = conversation();
    typed(
        &mut app,
        "This message is long enough to wrap: the box grows to show all of it, one row at a \
         time, up to five rows, and the list above gives up the rows it takes, so what you \
         send is what you see.",
    );
    insta::assert_snapshot!(render(&app));
    // The box's third text row is the screen's row 22 (of 0-23); "what you send is what you
    // see." is 30 columns.
    assert_eq!(cursor(&app), (1 + 30, 22));
}

/// Longer than five rows (here eight lines, typed with Alt-Enter), the box stops growing
/// and shows the rows around the cursor, saying how many are hidden: the last five while
/// typing at the end, the first five after Ctrl-A.
#[test]
fn a_message_longer_than_the_box_shows_the_cursors_part() {
    let mut app = conversation();
    for n in 1..=8 {
        if n > 1 {
            app.update(Msg::Paste("\n".into()));
        }
        typed(&mut app, &format!("line {n}"));
    }
    insta::assert_snapshot!("a_message_longer_than_the_box_at_its_end", render(&app));
    assert_eq!(cursor(&app), (1 + 6, 22));
    app.update(Msg::LineStart);
    insta::assert_snapshot!("a_message_longer_than_the_box_at_its_start", render(&app));
    assert_eq!(cursor(&app), (1, 18));
}

/// On a small terminal the box grows only as far as the message list can spare (it keeps
/// three rows), and the cursor stays inside the box at every size.
#[test]
fn the_input_box_grows_only_into_spare_rows() {
    for (w, h) in [(80, 10), (30, 8), (12, 4), (3, 3), (80, 1)] {
        let mut app = alice_sized(w, h);
        for n in 1..=8 {
            app.update(Msg::Paste(format!("line {n} of a message\n")));
        }
        let areas = app.layout(ratatui::layout::Rect::new(0, 0, w, h));
        if h >= 10 {
            assert_eq!(areas.timeline.height, 3, "{w}x{h}");
            assert_eq!(areas.input.height, 4, "{w}x{h}");
        }
        let (x, y) = cursor(&app);
        let inside =
            |r: ratatui::layout::Rect| x < r.x + r.width.max(1) && y < r.y + r.height.max(1);
        assert!(
            inside(areas.input) || h < 3,
            "{w}x{h}: cursor ({x}, {y}) outside {:?}",
            areas.input
        );
    }
}

/// Wide characters and emoji take two columns in the box too: the text wraps by display
/// width and the cursor stands on the character it is before.
#[test]
fn the_input_cursor_counts_wide_characters() {
    let mut app = alice();
    // 45 characters two columns wide: 90 columns, more than the box's 77.
    typed(&mut app, &"日本語テキスト🎉🙂".repeat(5));
    for _ in 0..3 {
        app.update(Msg::Left);
    }
    insta::assert_snapshot!(render(&app));
    // 38 of them fit on the first row (76 columns); three from the end, the cursor is before
    // the 43rd, the fifth of the second row: after four, 8 columns.
    assert_eq!(cursor(&app), (1 + 8, 22));
}

/// Where the date changes between two messages a dated line heads the later one (times are
/// local: these tests run at UTC+0); none above the first message.
#[test]
fn a_day_change_is_marked() {
    let mut app = alice_sized(60, 10);
    let mut late = message(2, "bob", None, "still up?");
    let mut next_day = message(3, "alice", None, "morning!");
    // 23:58 on the 24th, then 08:05 on the 25th.
    late.created_at = Timestamp::from_unix_millis(T0_MS + (14 * 60 + 36) * 60_000);
    next_day.created_at = Timestamp::from_unix_millis(T0_MS + (22 * 60 + 43) * 60_000);
    net(
        &mut app,
        NetEvent::Messages(vec![message(1, "bob", None, "evening"), late, next_day]),
    );
    insta::assert_snapshot!(render(&app));
}

/// A status too long even for three rows keeps its first row and its end (what to do),
/// dropping detail from the middle.
#[test]
fn very_long_error_keeps_start_and_end() {
    let mut app = alice_sized(40, 24);
    let detail = "detail ".repeat(30);
    net(
        &mut app,
        NetEvent::Error(format!("cannot do it ({detail}); try this instead")),
    );
    let rows: Vec<String> = app
        .status_lines(40)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows[0].starts_with(" ! cannot do it"), "{rows:?}");
    assert!(rows[2].trim_end().ends_with("try this instead"), "{rows:?}");
}
