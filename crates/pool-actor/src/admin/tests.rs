use credpool_core::EntryId;

use super::{PoolError, Target, check_label, resolve_target};

const ENTRIES: [(EntryId, &str); 6] = [
    (EntryId(0xa1), "alpha"),
    (EntryId(0xb2), "2"),
    (EntryId(0xc3), "Dup"),
    (EntryId(0xd4), "dup"),
    (EntryId(0xe5), "ok"),
    (EntryId(0xf6), "last"),
];

/// target → the position found, or the error.
fn check(target: &str, expected: Result<usize, PoolError>) {
    let found = resolve_target(
        &Target::from(target),
        ENTRIES.iter().map(|(id, l)| (*id, *l)),
    );
    assert_eq!(found, expected, "{target:?}");
}

#[test]
fn a_target_is_an_id_then_a_label_then_a_position() {
    check("0000000000a1", Ok(0));
    check("0000000000f6", Ok(5));
    check("ALPHA", Ok(0));
    check(" last ", Ok(5));
    check("2", Ok(1)); // a label wins over a position
    check("1", Ok(0));
    check("6", Ok(5));
    check("5", Ok(4));
    check("7", Err(PoolError::NoSuchEntry("#7".to_owned())));
    check("0", Err(PoolError::NoSuchEntry("#0".to_owned())));
    check("dup", Err(PoolError::AmbiguousTarget("dup".to_owned())));
    check("nosuch", Err(PoolError::NoSuchEntry("nosuch".to_owned())));
    check(
        "00000000ffff",
        Err(PoolError::NoSuchEntry("00000000ffff".to_owned())),
    );
    check(
        " ",
        Err(PoolError::Invalid("no entry target given".to_owned())),
    );
}

#[test]
fn labels_are_trimmed_bounded_and_printable() {
    assert_eq!(check_label("  team key "), Ok("team key"));
    assert_eq!(check_label("ключ-1"), Ok("ключ-1"));
    for bad in [
        "",
        "   ",
        "a\nb",
        "a\rb",
        "evil\u{1b}[31m",
        "tab\there",
        "nul\0",
    ] {
        assert!(
            matches!(check_label(bad), Err(PoolError::Invalid(_))),
            "{bad:?}"
        );
    }
    let long = "x".repeat(super::MAX_LABEL_CHARS + 1);
    assert!(matches!(check_label(&long), Err(PoolError::Invalid(_))));
    assert!(check_label(&long[1..]).is_ok());
}
