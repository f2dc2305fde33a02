//! The reset-time parser (`credpool_core::reset`) on arbitrary headers, message and body.
//!
//! Properties: nothing panics; `reset_at` returns an instant strictly after `now` and at most
//! `now + ceiling`; the single-source parsers return instants after `now` when they say a
//! reset is in the future (`from_header`, `from_message`).

#![no_main]

use std::time::Duration;

use credpool_core::Timestamp;
use credpool_core::reset;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

const NOW: Timestamp = Timestamp(1_788_000_000_000);

fuzz_target!(|data: &[u8]| {
    let _ = run(Unstructured::new(data));
});

fn run(mut u: Unstructured<'_>) -> Result<()> {
    let ceiling = Duration::from_secs(u.int_in_range(0..=30 * 24 * 3600)?);
    let header_count = u.int_in_range(0..=4)?;
    let mut headers = Vec::with_capacity(header_count);
    for _ in 0..header_count {
        headers.push((u.arbitrary::<String>()?, u.arbitrary::<String>()?));
    }
    let number: f64 = u.arbitrary()?;
    let message: &str = u.arbitrary()?;
    let body = u.take_rest();
    let json = serde_json::from_slice::<serde_json::Value>(body).ok();
    let text = String::from_utf8_lossy(body);

    if let Some(at) = reset::reset_at(&headers, json.as_ref(), Some(message), NOW, ceiling) {
        assert!(at > NOW && at <= NOW.plus(ceiling), "{at:?}");
    }
    for (name, value) in &headers {
        if let Some(at) = reset::from_header(name, value, NOW) {
            assert!(at > NOW, "{name:?}: {value:?} gave {at:?}");
        }
    }
    if let Some(at) = reset::from_message(message, NOW) {
        assert!(at > NOW, "{message:?} gave {at:?}");
    }
    if let Some(json) = &json {
        let _ = reset::from_json(json, NOW);
    }
    let _ = reset::number_to_instant(number, NOW);
    for candidate in [message, &text] {
        let _ = reset::parse_reset_value(candidate, NOW);
        let _ = reset::parse_duration(candidate);
        let _ = reset::parse_rfc3339(candidate);
        let _ = reset::parse_http_date(candidate);
    }
    Ok(())
}
