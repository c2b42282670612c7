//! Unit tests of the bus's URL checks and of the feed's ordering and gap filling.

use std::sync::Arc;

use natter_shared::{Message, MessageId, Timestamp, Username};

use super::*;
use crate::hub::Hub;
use crate::store::CommitSink;

fn msg(id: i64) -> Message {
    Message {
        id: MessageId(id),
        sender_username: Username::parse("a").unwrap(),
        receiver_username: None,
        text: format!("m{id}"),
        created_at: Timestamp::now(),
        client_id: None,
    }
}

/// A password in the bus URL never reaches the log.
#[test]
fn bus_urls_are_shown_without_their_password() {
    let shown = |u: &str| BusTarget::parse(u, "p").unwrap().to_string();
    assert_eq!(shown("redis://10.0.0.5:6379/2"), "redis://10.0.0.5:6379/2");
    assert_eq!(
        shown("redis://:s3cret@10.0.0.5:6379"),
        "redis://:***@10.0.0.5:6379"
    );
    assert_eq!(shown("redis://bob:s3cret@h:1"), "redis://bob:***@h:1");
    assert!(BusTarget::parse("redis://h", "bad prefix").is_err());
    assert!(check_instance_name("chat-1").is_ok() && check_instance_name("").is_err());
}

fn feed() -> (Feed, crate::hub::Subscription) {
    let hub = Arc::new(Hub::new(64, 1 << 20));
    let sub = hub.register(&Username::parse("watcher").unwrap());
    let feed = Feed::new(Arc::clone(&hub), Arc::new(Bus::new(None)));
    feed.stored_up_to(MessageId(10));
    (feed, sub)
}

fn ids(sub: &mut crate::hub::Subscription) -> Vec<i64> {
    std::iter::from_fn(|| sub.rx.try_recv().ok())
        .filter_map(|o| match o {
            crate::hub::Outbound::Message { id, .. } => Some(id.0),
            crate::hub::Outbound::Presence { .. } => None,
        })
        .collect()
}

/// Whichever path brings a message first delivers it; the other is skipped; a batch past
/// the cursor is a gap, delivered only after the fill.
#[test]
fn each_message_once_in_order_and_gaps_are_filled_not_skipped() {
    let (feed, mut sub) = feed();
    feed.committed(&[msg(11), msg(12)]);
    assert_eq!(feed.offer(&[msg(11), msg(12)]), Ok(()), "already delivered");
    assert_eq!(feed.offer(&[msg(12), msg(13)]), Ok(()), "overlap: 13 only");
    assert_eq!(
        feed.offer(&[msg(16), msg(17)]),
        Err(Gap {
            after: MessageId(13),
            before: MessageId(16)
        })
    );
    assert_eq!(ids(&mut sub), vec![11, 12, 13], "nothing past the gap");
    feed.fill(MessageId(15), &[msg(14), msg(15)]);
    assert_eq!(feed.offer(&[msg(16), msg(17)]), Ok(()));
    // The writer finds what the bus already brought: nothing twice.
    feed.found(&[msg(15), msg(16), msg(17), msg(18)]);
    assert_eq!(ids(&mut sub), vec![14, 15, 16, 17, 18]);
    assert_eq!(feed.delivered(), MessageId(18));
}
