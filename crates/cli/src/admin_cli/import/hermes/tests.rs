#![allow(clippy::unwrap_used, clippy::expect_used)]

use credpool_core::Fingerprint;
use serde_json::json;

use super::*;

/// "Now" in every case: 2026-01-01T00:00:00Z.
const NOW: Timestamp = Timestamp(1_767_225_600_000);

fn registry() -> ProviderRegistry {
    ProviderRegistry::builtin()
}

/// Maps one row of `provider` at [`NOW`].
fn map(provider: &str, row: Value) -> Result<Candidate, Refusal> {
    let rows = read_provider(provider, &[row], &registry(), NOW);
    rows.rows.into_iter().next().unwrap().mapped
}

/// The refusal code of a row, or `ok`.
fn outcome(provider: &str, row: Value) -> String {
    match map(provider, row) {
        Ok(_) => "ok".to_owned(),
        Err(refusal) => refusal.code().to_owned(),
    }
}

fn check_outcome(provider: &str, row: Value, expected: &str) {
    assert_eq!(
        outcome(provider, row.clone()),
        expected,
        "{provider}: {row}"
    );
}

#[test]
fn rows_are_refused_for_what_credpool_cannot_hold() {
    let key = |extra: Value| {
        let mut row = json!({"label": "k", "auth_type": "api_key", "source": "manual",
                             "access_token": "sk-fake"});
        row.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        row
    };
    let cases = [
        ("openrouter", key(json!({})), "ok"),
        (
            "openrouter",
            key(json!({"source": "manual:dashboard"})),
            "ok",
        ),
        ("openrouter", key(json!({"auth_type": null})), "ok"),
        ("custom:together.ai", key(json!({})), "ok"),
        ("zai", key(json!({})), "unknown_provider"),
        ("custom:", key(json!({})), "unknown_provider"),
        (
            "openrouter",
            key(json!({"source": "env:OPENROUTER_API_KEY"})),
            "borrowed",
        ),
        (
            "openrouter",
            key(json!({"source": "config:team"})),
            "borrowed",
        ),
        (
            "openrouter",
            key(json!({"source": "vault:secret/or"})),
            "borrowed",
        ),
        ("copilot", key(json!({"source": "gh_cli"})), "borrowed"),
        (
            "anthropic",
            key(json!({"source": "claude_code"})),
            "borrowed",
        ),
        ("anthropic", key(json!({"source": "hermes_pkce"})), "ok"),
        ("xai-oauth", key(json!({"source": "device_code"})), "ok"),
        (
            "openrouter",
            key(json!({"source": "device_code"})),
            "borrowed",
        ),
        (
            "openrouter",
            key(json!({"access_token": ""})),
            "empty_secret",
        ),
        (
            "openrouter",
            key(json!({"access_token": null})),
            "empty_secret",
        ),
        ("openrouter", key(json!({"access_token": 42})), "malformed"),
        (
            "openrouter",
            key(json!({"auth_type": "session"})),
            "unknown_auth_type",
        ),
        (
            "openrouter",
            key(json!({"last_status": "benched"})),
            "unknown_status",
        ),
        (
            "openrouter",
            key(json!({"label": "a\u{1b}[2Jb"})),
            "bad_label",
        ),
        (
            "openrouter",
            key(json!({"label": "x".repeat(129)})),
            "bad_label",
        ),
        ("openrouter", key(json!({"label": "x".repeat(128)})), "ok"),
        (
            "openrouter",
            key(json!({"base_url": "ftp://example.com"})),
            "bad_base_url",
        ),
        (
            "openrouter",
            key(json!({"base_url": "not a url"})),
            "bad_base_url",
        ),
        ("openrouter", key(json!({"priority": "first"})), "malformed"),
        ("openrouter", key(json!({"request_count": -1})), "malformed"),
        (
            "openrouter",
            key(json!({"access_token": "k".repeat(16 * 1024 + 1)})),
            "secret_too_long",
        ),
        ("openrouter", json!("sk-just-a-string"), "malformed"),
        (
            "xai-oauth",
            json!({"auth_type": "oauth", "refresh_token": "rt"}),
            "ok",
        ),
        (
            "xai-oauth",
            json!({"auth_type": "oauth", "access_token": "at"}),
            "ok",
        ),
        (
            "xai-oauth",
            json!({"auth_type": "oauth", "access_token": "", "refresh_token": ""}),
            "empty_secret",
        ),
        (
            "openrouter",
            json!({"auth_type": "oauth", "refresh_token": "rt"}),
            "not_an_oauth_provider",
        ),
        (
            "custom:corp",
            json!({"auth_type": "oauth", "refresh_token": "rt"}),
            "not_an_oauth_provider",
        ),
    ];
    for (provider, row, expected) in cases {
        check_outcome(provider, row, expected);
    }
}

#[test]
fn owned_sources_follow_hermes_own_list() {
    for (provider, source, owned) in [
        ("openrouter", "manual", true),
        ("openrouter", "manual:hermes_pkce", true),
        ("openrouter", "manualish", false),
        ("anthropic", "hermes_pkce", true),
        ("openai-codex", "hermes_pkce", false),
        ("minimax-oauth", "oauth", true),
        ("nous", "device_code", true),
        ("openai-codex", "device_code", true),
        ("xai-oauth", "device_code", true),
        ("xai-oauth", "loopback_pkce", false),
        ("anthropic", "claude_code", false),
        ("copilot", "env:GH_TOKEN", false),
        ("custom:corp", "model_config", false),
    ] {
        assert_eq!(is_owned(provider, source), owned, "{provider} {source}");
    }
}

#[test]
fn times_are_read_in_every_form_hermes_writes() {
    let at = Timestamp(1_767_225_600_000);
    for (value, expected) in [
        (json!(1_767_225_600), Some(at)),
        (json!(1_767_225_600.5), Some(Timestamp(1_767_225_600_500))),
        (json!(1_767_225_600_000_i64), Some(at)),
        (json!("1767225600"), Some(at)),
        (json!("2026-01-01T00:00:00Z"), Some(at)),
        (json!("2026-01-01T00:00:00+00:00"), Some(at)),
        (json!("2026-01-01T01:00:00+01:00"), Some(at)),
        (json!("2026-01-01T00:00:00"), Some(at)),
        (json!(0), None),
        (json!(-5), None),
        (json!(""), None),
        (json!("soon"), None),
        (json!(null), None),
        (json!(true), None),
    ] {
        assert_eq!(absolute_time(&value), expected, "{value}");
    }
}

#[test]
fn cooldown_causes_keep_a_billing_verdict_then_read_the_status() {
    use CooldownCause::*;
    for (code, failure_reason, expected) in [
        (Some(429), None, RateLimited),
        (Some(429), Some("billing"), Billing),
        (Some(402), None, Billing),
        (None, Some("billing_unverified"), Billing),
        (Some(401), None, Auth),
        (Some(403), None, Auth),
        (None, Some("auth"), Auth),
        (None, Some("rate_limit"), RateLimited),
        (Some(500), None, Other),
        (None, None, Other),
        (None, Some("model_entitlement"), Other),
    ] {
        assert_eq!(
            cooldown_cause(code, failure_reason),
            expected,
            "{code:?} {failure_reason:?}"
        );
    }
}

/// The status a row gets, as `ok`, `dead:<reason>` or `cooling:<cause>:<seconds from NOW>`.
fn status(extra: Value) -> String {
    let mut row = json!({"last_status": null});
    row.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    match status_of(&row, NOW) {
        Ok((Status::Ok, _)) => "ok".to_owned(),
        Ok((Status::Dead { reason, .. }, _)) => format!("dead:{}", reason.as_str()),
        Ok((Status::CoolingDown { until, cause }, _)) => {
            format!("cooling:{}:{}", cause.as_str(), until.since(NOW).as_secs())
        }
        Err(refusal) => refusal.code().to_owned(),
    }
}

#[test]
fn statuses_carry_over_and_expired_cooldowns_come_back_ok() {
    let hour_ago = NOW.millis() / 1000 - 3600;
    let week = 7 * 24 * 3600;
    for (row, expected) in [
        (json!({}), "ok".to_owned()),
        (json!({"last_status": "ok"}), "ok".to_owned()),
        (
            json!({"last_status": "dead", "last_error_reason": "invalid_grant"}),
            "dead:invalid_grant".to_owned(),
        ),
        (
            json!({"last_status": "dead"}),
            format!("dead:{IMPORTED_DEAD}"),
        ),
        (
            json!({"last_status": "dead", "last_error_reason": "revoked for a@b.c at 10.0.0.1"}),
            format!("dead:{IMPORTED_DEAD}"),
        ),
        (
            json!({"last_status": "exhausted", "last_error_code": 429,
                   "last_error_reset_at": NOW.millis() / 1000 + 600}),
            "cooling:rate_limited:600".to_owned(),
        ),
        (
            json!({"last_status": "exhausted", "last_error_code": 429,
                   "last_error_reset_at": NOW.millis() + 600_000}),
            "cooling:rate_limited:600".to_owned(),
        ),
        (
            json!({"last_status": "exhausted", "last_error_code": 429,
                   "last_error_reset_at": "2100-01-01T00:00:00Z"}),
            format!("cooling:rate_limited:{week}"),
        ),
        (
            json!({"last_status": "exhausted", "last_error_code": 429,
                   "last_error_reset_at": hour_ago}),
            "ok".to_owned(),
        ),
        (
            json!({"last_status": "exhausted", "last_error_code": 402,
                   "last_status_at": NOW.millis() / 1000 - 600}),
            "cooling:billing:3000".to_owned(),
        ),
        (
            json!({"last_status": "exhausted", "last_error_code": 401,
                   "last_status_at": NOW.millis() / 1000 - 60}),
            "cooling:auth:240".to_owned(),
        ),
        (
            json!({"last_status": "exhausted", "last_error_code": 401,
                   "last_status_at": hour_ago}),
            "ok".to_owned(),
        ),
        (json!({"last_status": "exhausted"}), "ok".to_owned()),
        (
            json!({"last_status": "exhausted", "last_error_code": "429"}),
            "malformed".to_owned(),
        ),
    ] {
        assert_eq!(status(row.clone()), expected, "{row}");
    }
}

#[test]
fn a_grant_keeps_its_tokens_expiry_and_client_facts() {
    let candidate = map(
        "xai-oauth",
        json!({"label": "me", "auth_type": "oauth", "source": "device_code",
               "access_token": "at-fake", "refresh_token": "rt-fake",
               "expires_at_ms": 1_767_229_200_000_i64, "client_id": "client-1",
               "scope": "openid offline_access", "request_count": 4, "priority": 3}),
    )
    .unwrap();
    let entry = &candidate.entry;
    assert_eq!(candidate.order, 3);
    assert_eq!(entry.source, SecretSource::OAuthGrant);
    assert_eq!(entry.usage.selections, 4);
    assert_eq!(entry.base_url.as_deref(), Some("https://api.x.ai/v1"));
    let tokens = entry.oauth().unwrap();
    assert_eq!(tokens.access.expose(), "at-fake");
    assert_eq!(tokens.refresh.as_ref().map(Secret::expose), Some("rt-fake"));
    assert_eq!(tokens.expires_at, Some(Timestamp(1_767_229_200_000)));
    assert_eq!(tokens.client.client_id.as_deref(), Some("client-1"));
    assert_eq!(entry.fingerprint(), Fingerprint::of("at-fake"));

    let iso = map(
        "nous",
        json!({"auth_type": "oauth", "source": "device_code", "refresh_token": "rt",
               "expires_at": "2026-01-01T01:00:00Z"}),
    )
    .unwrap();
    let tokens = iso.entry.oauth().unwrap();
    assert_eq!(tokens.expires_at, Some(NOW.plus(Duration::from_secs(3600))));
    assert!(iso.entry.needs_first_token(), "no access token yet");
    assert_eq!(iso.entry.fingerprint(), Fingerprint::of("rt"));
}

#[test]
fn an_api_key_is_owned_and_keeps_its_endpoint_and_model_benches() {
    let candidate = map(
        "openrouter",
        json!({"label": " team ", "access_token": "sk-fake\n", "base_url": "https://or.example/v1/",
               "model_cooldowns": {"gpt-x": NOW.millis() / 1000 + 60, "gpt-y": 1}}),
    )
    .unwrap();
    let entry = &candidate.entry;
    assert_eq!(entry.label, "team");
    assert_eq!(entry.source, SecretSource::Manual);
    assert_eq!(entry.request_secret().expose(), "sk-fake");
    assert_eq!(entry.base_url.as_deref(), Some("https://or.example/v1"));
    assert_eq!(
        entry.model_cooldowns.keys().collect::<Vec<_>>(),
        ["gpt-x"],
        "the bench that ended is dropped"
    );
    assert!(entry.secrets_owned());
}

#[test]
fn shared_labels_get_the_hermes_id_and_defaults_follow_hermes() {
    let rows = [
        json!({"id": "aaa111", "source": "manual", "access_token": "k1"}),
        json!({"id": "bbb222", "label": "Manual", "access_token": "k2"}),
        json!({"id": "ccc333", "label": "solo", "access_token": "k3"}),
        json!({"source": "manual:dashboard", "access_token": "k4"}),
        json!({"label": "twin", "access_token": "k5"}),
        json!({"label": "twin", "access_token": "k6"}),
    ];
    let read = read_provider("openrouter", &rows, &registry(), NOW);
    let labels: Vec<Option<String>> = read.rows.iter().map(|row| row.label.clone()).collect();
    let expected = [
        "manual [aaa111]",
        "Manual [bbb222]",
        "solo",
        "manual:dashboard",
        "twin",
        "twin",
    ];
    assert_eq!(
        labels,
        expected.map(|label| Some(label.to_owned())).to_vec(),
        "twins without ids are left for the plan to refuse"
    );
    assert_eq!(read.provider, Some(ProviderId::new("openrouter")));
    assert_eq!(read.rows[2].hermes_id.as_deref(), Some("ccc333"));
}

#[test]
fn a_file_this_import_does_not_know_is_an_error() {
    for (document, expected) in [
        (json!([]), "not a JSON object"),
        (json!({"version": 2, "credential_pool": {}}), "version 2"),
        (json!({"version": 1}), "no credential_pool"),
        (
            json!({"version": 1, "credential_pool": {"openrouter": {}}}),
            "not a list",
        ),
    ] {
        let error = read_pool(&document, &registry(), NOW).unwrap_err();
        assert!(error.to_string().contains(expected), "{error}");
    }
    let empty = read_pool(&json!({"credential_pool": {}}), &registry(), NOW).unwrap();
    assert!(empty.is_empty());
}
