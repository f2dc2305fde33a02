use std::io::Write;

use credpool_core::{
    Entry, EntryId, EntryKind, Fingerprint, Generation, ProviderId, Secret, SecretSource, Timestamp,
};

use super::{Journal, JournalRead, ManifestState, read};
use crate::{Change, RefreshMarker};

fn entry(id: u64, generation: u64, label: &str) -> Change {
    let mut entry = Entry::new(
        EntryId(id),
        label,
        EntryKind::ApiKey {
            key: Secret::new("k"),
        },
        SecretSource::Manual,
    );
    entry.generation = Generation(generation);
    Change::PutEntry {
        provider: ProviderId::new("p"),
        entry,
    }
}

fn marker(id: u64, generation: u64, fingerprint: &str) -> Change {
    Change::PutMarker(RefreshMarker {
        provider: ProviderId::new("p"),
        entry: EntryId(id),
        generation: Generation(generation),
        refresh_fingerprint: Fingerprint::parse(fingerprint)
            .unwrap_or_else(|| Secret::new(fingerprint).fingerprint()),
        started_at: Timestamp(0),
    })
}

fn state_of(path: &std::path::Path) -> ManifestState {
    match read(path).unwrap() {
        JournalRead::State(state, _) => state,
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_journal_replays_to_the_highest_generations_and_the_spent_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(super::MANIFEST_FILE);
    let mut journal = Journal::create(&path, ManifestState::default()).unwrap();
    journal.after_batch(&[entry(1, 1, "a"), entry(2, 1, "b"), marker(1, 1, "rt-a")]);
    journal.after_batch(&[entry(1, 3, "a")]);
    // a write-behind of an older copy never lowers the generation
    journal.after_batch(&[entry(1, 2, "a")]);
    journal.durable().unwrap();
    journal
        .before_batch(&[Change::RemoveEntry {
            provider: ProviderId::new("p"),
            entry: EntryId(2),
        }])
        .unwrap();
    // markers past the first generation are not seeds
    journal.after_batch(&[marker(1, 3, "rt-later")]);
    // a batch never made durable is never recorded
    journal.after_batch(&[entry(9, 1, "never-flushed")]);
    drop(journal);
    let state = state_of(&path);
    let entries = &state.providers["p"];
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[&1].generation, 3);
    assert_eq!(entries[&1].label, "a");
    assert_eq!(state.spent.len(), 1);
}

#[test]
fn a_torn_last_record_is_dropped_and_a_damaged_middle_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(super::MANIFEST_FILE);
    let mut journal = Journal::create(&path, ManifestState::default()).unwrap();
    for id in 1..=5 {
        journal.after_batch(&[entry(id, 1, "x")]);
        journal.durable().unwrap();
    }
    drop(journal);
    let whole = std::fs::read(&path).unwrap();
    // torn: the last record cut short
    std::fs::write(&path, &whole[..whole.len() - 3]).unwrap();
    assert_eq!(state_of(&path).providers["p"].len(), 4);
    // damaged in the middle: a flipped byte in an early record, good ones after it
    let mut flipped = whole.clone();
    let at = whole.len() / 3;
    flipped[at] ^= 0xff;
    std::fs::write(&path, &flipped).unwrap();
    assert!(matches!(read(&path).unwrap(), JournalRead::Damaged { .. }));
    // absent
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(read(&path).unwrap(), JournalRead::Absent));
}

#[test]
fn a_long_journal_is_compacted_into_one_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(super::MANIFEST_FILE);
    let mut journal = Journal::create(&path, ManifestState::default()).unwrap();
    for generation in 1..=(super::COMPACT_AFTER + 10) {
        journal.after_batch(&[entry(7, generation, "g")]);
        journal.durable().unwrap();
    }
    journal.maintain().unwrap();
    drop(journal);
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size < 256, "compacted to one snapshot: {size} bytes");
    assert_eq!(
        state_of(&path).providers["p"][&7].generation,
        super::COMPACT_AFTER + 10
    );
    // appends continue after the snapshot
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    file.write_all(
        &super::frame(&super::Record::Remove {
            provider: "p".to_owned(),
            entry: 7,
        })
        .unwrap(),
    )
    .unwrap();
    assert!(state_of(&path).providers.is_empty());
}
