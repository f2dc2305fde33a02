//! The refresher's token-endpoint answer parsers on arbitrary bytes: `parse_success` for a
//! 2xx body, `classify_failure` and `oauth_error_code` for the others.
//!
//! Properties: nothing panics; a parsed success always has a non-empty access token; an
//! extracted OAuth error code is short and code-like (so a provider echoing a token cannot put
//! it into our errors), and a terminal or denied error carries exactly that code.

#![no_main]

use std::time::Duration;

use credpool_refresher::endpoint::RefreshError;
use credpool_refresher::endpoint::grant::{classify_failure, oauth_error_code, parse_success};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(response) = parse_success(data) {
        assert!(!response.access.is_empty());
        assert!(response.refresh.as_ref().is_none_or(|r| !r.is_empty()));
    }
    let code = oauth_error_code(data);
    if let Some(code) = &code {
        assert!((1..=64).contains(&code.len()), "{code:?}");
        assert!(
            code.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':')),
            "{code:?}"
        );
    }
    let status = match data {
        [high, low, ..] => 400 + u16::from_be_bytes([*high, *low]) % 200,
        _ => 400,
    };
    match classify_failure(status, Some(Duration::from_secs(1)), data) {
        RefreshError::Terminal { code: got, .. } | RefreshError::Denied { code: got, .. } => {
            assert_eq!(Some(&got), code.as_ref());
        }
        _ => {}
    }
});
