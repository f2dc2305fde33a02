use credpool_core::{Fingerprint, Timestamp};

use super::*;
use crate::fixtures::{self, provider, views};
use crate::{ProviderState, RefreshMarker};

fn put(entry: &Entry) -> Change {
    Change::PutEntry {
        provider: provider(),
        entry: entry.clone(),
    }
}

#[test]
fn injected_failures_fail_every_write_and_change_nothing() {
    let store = MemoryStore::new();
    store.apply(&[put(&fixtures::busy(1))]).expect("applies");
    store.set_fail_writes(true);
    let mut rotated = fixtures::busy(1);
    rotated.generation = rotated.generation.next();
    let failures = [
        store.apply(&[put(&fixtures::dead(2))]).err(),
        store
            .compare_and_swap(&provider(), fixtures::busy(1).generation, &rotated)
            .err(),
        store.flush().err(),
    ];
    for failure in failures {
        assert!(matches!(failure, Some(StoreError::Io(_))), "{failure:?}");
    }
    assert_eq!(store.flush_count(), 0);
    let snapshot = store.load_provider(&provider()).expect("reads still work");
    assert_eq!(views(&snapshot.entries), views(&[fixtures::busy(1)]));

    store.set_fail_writes(false);
    store.flush().expect("flushes");
    store.flush().expect("flushes");
    assert_eq!(store.flush_count(), 2);
}

#[test]
fn a_crash_loses_exactly_what_was_not_flushed() {
    let store = MemoryStore::new();
    store.apply(&[put(&fixtures::busy(1))]).expect("applies");
    store.flush().expect("flushes");
    store
        .apply(&[
            put(&fixtures::dead(2)),
            Change::PutProviderState {
                provider: provider(),
                state: ProviderState {
                    strategy: credpool_core::Strategy::Random,
                    round_robin_cursor: 1,
                },
            },
        ])
        .expect("applies");
    assert_eq!(
        store
            .load_provider(&provider())
            .expect("loads")
            .entries
            .len(),
        2
    );
    store.crash();
    let snapshot = store.load_provider(&provider()).expect("loads");
    assert_eq!(views(&snapshot.entries), views(&[fixtures::busy(1)]));
    assert_eq!(snapshot.state, None);
}

#[test]
fn records_go_through_the_codec_and_corrupt_ones_are_quarantined() {
    let clock = Arc::new(credpool_core::ManualClock::new(Timestamp(99)));
    let store = MemoryStore::with_clock(clock);
    let marker = RefreshMarker {
        provider: provider(),
        entry: EntryId(1),
        generation: credpool_core::Generation(42),
        refresh_fingerprint: Fingerprint::of("rt"),
        started_at: Timestamp(5),
    };
    store
        .apply(&[put(&fixtures::busy(1)), Change::PutMarker(marker.clone())])
        .expect("applies");
    store
        .put_raw_entry(&provider(), EntryId(7), b"\x01\x07")
        .expect("writes");
    let snapshot = store.load_provider(&provider()).expect("loads");
    assert_eq!(views(&snapshot.entries), views(&[fixtures::busy(1)]));
    assert_eq!(snapshot.markers, vec![marker]);
    assert_eq!(snapshot.quarantined.len(), 1);
    assert_eq!(snapshot.quarantined[0].key, "entries/openai/000000000007");
    assert_eq!(snapshot.quarantined[0].quarantined_at, Timestamp(99));
    assert_eq!(store.quarantined().expect("lists"), snapshot.quarantined);
    assert_eq!(store.providers().expect("lists"), vec![provider()]);
    // Moved out of the entries: the next load finds only the quarantine record.
    let again = store.load_provider(&provider()).expect("loads");
    assert_eq!(again.quarantined, snapshot.quarantined);
}

#[test]
fn compare_and_swap_and_hooks_match_the_sled_backend() {
    let store = MemoryStore::new();
    let seen: Arc<Mutex<Vec<ChangeNotice>>> = Arc::default();
    let sink = Arc::clone(&seen);
    store.watch(Arc::new(move |notice: &ChangeNotice| {
        sink.lock().expect("lock").push(notice.clone());
    }));
    let mut entry = fixtures::oauth(1, "at", Some("rt"), credpool_core::SecretSource::OAuthGrant);
    let first = entry.generation;
    assert_eq!(
        store
            .compare_and_swap(&provider(), first, &entry)
            .expect("cas"),
        CasOutcome::Conflict { found: None }
    );
    store.apply(&[put(&entry)]).expect("applies");
    entry.generation = first.next();
    assert_eq!(
        store
            .compare_and_swap(&provider(), first, &entry)
            .expect("cas"),
        CasOutcome::Swapped
    );
    assert_eq!(
        store
            .compare_and_swap(&provider(), first, &entry)
            .expect("cas"),
        CasOutcome::Conflict {
            found: Some(first.next())
        }
    );
    let notice = ChangeNotice {
        provider: provider(),
        entries: vec![EntryId(1)],
    };
    assert_eq!(*seen.lock().expect("lock"), vec![notice.clone(), notice]);
}
