use credpool_core::{EntryId, ProviderId, Timestamp};

use super::{EVENT_HISTORY, EventStream, PoolEvent, Subscribers};

fn added(n: u64) -> PoolEvent {
    PoolEvent::Added {
        provider: ProviderId::new("p"),
        entry: EntryId(n),
        label: format!("e{n}"),
    }
}

fn drain(stream: &mut EventStream) -> Vec<PoolEvent> {
    std::iter::from_fn(|| stream.try_recv().map(|record| record.event)).collect()
}

#[test]
fn a_resumed_subscriber_gets_what_it_missed_then_the_live_events() {
    let mut subscribers = Subscribers::default();
    let (first, mut stream) = EventStream::channel(64, None);
    subscribers.subscribe(first);
    for n in 1..=3 {
        subscribers.publish(added(n), Timestamp(n as i64));
    }
    let seen: Vec<u64> = std::iter::from_fn(|| stream.try_recv().map(|r| r.id)).collect();
    assert_eq!(seen.len(), 3);
    assert!(
        seen.windows(2).all(|pair| pair[0] < pair[1]),
        "ids increase"
    );

    let (resumed, mut resumed_stream) = EventStream::channel(64, Some(seen[0]));
    subscribers.subscribe(resumed);
    subscribers.publish(added(4), Timestamp(4));
    assert_eq!(
        drain(&mut resumed_stream),
        vec![added(2), added(3), added(4)]
    );

    let (fresh, mut fresh_stream) = EventStream::channel(64, None);
    subscribers.subscribe(fresh);
    assert!(
        drain(&mut fresh_stream).is_empty(),
        "no replay without a since"
    );
}

#[test]
fn resuming_past_the_history_says_events_were_missed() {
    let mut subscribers = Subscribers::default();
    let (probe, mut probe_stream) = EventStream::channel(4, None);
    subscribers.subscribe(probe);
    subscribers.publish(added(0), Timestamp(0));
    let first_id = probe_stream.try_recv().map(|r| r.id).unwrap_or_default();
    for n in 1..=(EVENT_HISTORY as u64 + 10) {
        subscribers.publish(added(n), Timestamp(0));
    }
    let (late, mut late_stream) = EventStream::channel(EVENT_HISTORY + 8, Some(first_id));
    subscribers.subscribe(late);
    let events = drain(&mut late_stream);
    assert!(matches!(events[0], PoolEvent::Lagged { missed } if missed >= 1));
    assert_eq!(events.len(), EVENT_HISTORY + 1);
}

#[test]
fn a_full_subscriber_is_told_how_many_it_missed() {
    let mut subscribers = Subscribers::default();
    let (small, mut stream) = EventStream::channel(2, None);
    subscribers.subscribe(small);
    for n in 1..=5 {
        subscribers.publish(added(n), Timestamp(0));
    }
    assert_eq!(drain(&mut stream), vec![added(1), added(2)]);
    subscribers.publish(added(6), Timestamp(0));
    assert_eq!(
        drain(&mut stream),
        vec![PoolEvent::Lagged { missed: 3 }, added(6)]
    );
}
