//! `credpool_core::classify` on an answer built from arbitrary bytes: status, provider hint,
//! credential kind, headers, then the rest as the body.
//!
//! Properties (the classifier's documented invariants): it never panics; the message is at
//! most `MAX_MESSAGE_CHARS` characters plus an ellipsis and has no line break; a reset time is
//! strictly after `now` and at most `now + ceiling`; `explain` is one line.

#![no_main]

use std::time::Duration;

use credpool_core::classify::{MAX_MESSAGE_CHARS, explain};
use credpool_core::{ClassifyInput, CredentialKind, Timestamp, classify};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

const NOW: Timestamp = Timestamp(1_788_000_000_000);
const CEILING: Duration = Duration::from_secs(7 * 24 * 3600);

fuzz_target!(|data: &[u8]| {
    let _ = run(Unstructured::new(data));
});

fn run(mut u: Unstructured<'_>) -> Result<()> {
    let status: Option<u16> = u.arbitrary()?;
    let provider: Option<&str> = u.arbitrary()?;
    let entry_kind = *u.choose(&[
        None,
        Some(CredentialKind::ApiKey),
        Some(CredentialKind::OAuth),
    ])?;
    let header_count = u.int_in_range(0..=4)?;
    let mut headers = Vec::with_capacity(header_count);
    for _ in 0..header_count {
        headers.push((u.arbitrary::<String>()?, u.arbitrary::<String>()?));
    }
    let body = u.take_rest();
    let input = ClassifyInput {
        provider,
        entry_kind,
        status,
        headers: &headers,
        body,
    };
    let got = classify(&input, NOW, CEILING);
    if let Some(message) = &got.message {
        assert!(
            message.chars().count() <= MAX_MESSAGE_CHARS + 1,
            "{message:?}"
        );
        assert!(!message.contains('\n'), "{message:?}");
    }
    if let Some(at) = got.reset_at {
        assert!(at > NOW && at <= NOW.plus(CEILING), "{at:?}");
    }
    assert!(!explain(&got).contains('\n'));
    Ok(())
}
