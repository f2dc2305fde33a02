//! Properties of the token-endpoint answer parsers, on generated answers.
//!
//! `parse_success` reads a 2xx body; `classify_failure` reads every other answer. Neither may
//! panic on any bytes, a success without an access token is an error, and no token from an
//! answer ends up in an error.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::time::Duration;

use credpool_refresher::endpoint::grant::{classify_failure, parse_success};
use credpool_refresher::endpoint::{ProtocolReason, RefreshError};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Tokens as providers issue them: opaque strings, JWT-like strings, at least 16 characters so
/// that finding one in an error cannot be a coincidence.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_-]{16,64}",
        "eyJ[A-Za-z0-9_-]{10,30}\\.[A-Za-z0-9_-]{10,30}\\.[A-Za-z0-9_-]{10,30}",
    ]
}

/// The optional members of a token answer, well typed, plus an unknown member.
fn optional_members() -> impl Strategy<Value = Map<String, Value>> {
    (
        proptest::option::of(token()),
        proptest::option::of(prop_oneof![
            any::<u32>().prop_map(Value::from),
            any::<u32>().prop_map(|n| Value::from(n.to_string())),
            Just(Value::Null),
        ]),
        proptest::option::of("[a-z:. ]{0,30}"),
        proptest::option::of(prop::sample::select(vec!["Bearer", "bearer", "DPoP"])),
        proptest::option::of(("[a-z_]{1,12}", any::<i64>())),
    )
        .prop_map(|(refresh, expires_in, scope, token_type, unknown)| {
            let mut members = Map::new();
            if let Some(refresh) = refresh {
                members.insert("refresh_token".to_owned(), Value::from(refresh));
            }
            if let Some(expires_in) = expires_in {
                members.insert("expires_in".to_owned(), expires_in);
            }
            if let Some(scope) = scope {
                members.insert("scope".to_owned(), Value::from(scope));
            }
            if let Some(token_type) = token_type {
                members.insert("token_type".to_owned(), Value::from(token_type));
            }
            if let Some((name, value)) = unknown {
                // Unknown members are ignored, whatever their name.
                let known = [
                    "access_token",
                    "refresh_token",
                    "expires_in",
                    "scope",
                    "token_type",
                ];
                if !known.contains(&name.as_str()) {
                    members.insert(name, Value::from(value));
                }
            }
            members
        })
}

fn is_missing_access_token(result: &Result<impl std::fmt::Debug, RefreshError>) -> bool {
    matches!(
        result,
        Err(RefreshError::Protocol {
            reason: ProtocolReason::MissingAccessToken
        })
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any bytes: an error or a response with a non-empty access token, never a panic.
    #[test]
    fn parsing_arbitrary_bytes_never_panics(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(response) = parse_success(&body) {
            prop_assert!(!response.access.is_empty());
        }
        let _ = classify_failure(400, None, &body);
    }

    /// Near-JSON text reaches the deeper branches: an error or a usable token, never a panic.
    #[test]
    fn parsing_json_like_text_never_panics(
        prefix in prop::sample::select(vec![
            "{\"access_token\":", "{\"access_token\":\"a\",\"expires_in\":", "{\"error\":",
            "{\"error\":{\"code\":", "[", "{\"refresh_token\":\"r\",",
        ]),
        tail in "[ -~]{0,60}",
    ) {
        let body = format!("{prefix}{tail}");
        if let Ok(response) = parse_success(body.as_bytes()) {
            prop_assert!(!response.access.is_empty());
        }
        let _ = classify_failure(401, Some(Duration::from_secs(1)), body.as_bytes());
    }

    /// A 2xx answer whose `access_token` is absent, null or empty is an error, whatever else
    /// it carries (a rotated refresh token included: it must not be taken alone).
    #[test]
    fn a_success_without_an_access_token_is_an_error(
        members in optional_members(),
        access in prop::sample::select(vec![None, Some(Value::Null), Some(Value::from(""))]),
    ) {
        let mut members = members;
        if let Some(access) = access {
            members.insert("access_token".to_owned(), access);
        }
        let body = Value::Object(members).to_string();
        let result = parse_success(body.as_bytes());
        prop_assert!(is_missing_access_token(&result), "{body}: {result:?}");
    }

    /// A 2xx answer with an access token yields exactly the members it carried.
    #[test]
    fn a_success_with_an_access_token_keeps_its_members(
        members in optional_members(),
        access in token(),
    ) {
        let mut members = members;
        members.insert("access_token".to_owned(), Value::from(access.clone()));
        let body = Value::Object(members.clone()).to_string();
        let response = parse_success(body.as_bytes()).unwrap();
        prop_assert_eq!(response.access.expose(), access.as_str());
        prop_assert_eq!(
            response.refresh.as_ref().map(|r| r.expose().to_owned()),
            members.get("refresh_token").and_then(Value::as_str).map(str::to_owned)
        );
        let expires_in = match members.get("expires_in") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        prop_assert_eq!(response.expires_in, expires_in.map(Duration::from_secs));
        prop_assert_eq!(
            response.scope.as_deref(),
            members.get("scope").and_then(Value::as_str)
        );
    }

    /// A token echoed in an error answer's description or message never reaches the error.
    #[test]
    fn tokens_in_error_answers_stay_out_of_errors(
        status in prop::sample::select(vec![400u16, 401, 403, 409, 422, 429, 500, 503]),
        code in prop::sample::select(vec!["invalid_grant", "invalid_request", "access_denied", "slow_down", "weird_code"]),
        token in token(),
        shape in 0usize..3,
    ) {
        let body = match shape {
            0 => json!({"error": code, "error_description": format!("refresh token {token} is not valid")}),
            1 => json!({"error": {"code": code, "message": format!("Bearer {token} rejected")}}),
            _ => json!({"detail": format!("{token}")}),
        };
        let error = classify_failure(status, None, body.to_string().as_bytes());
        let shown = format!("{error} {error:?}");
        prop_assert!(!shown.contains(&token), "{shown}");
    }
}
