#![allow(clippy::unwrap_used, clippy::expect_used)]

use credpool::{ManualClock, Timestamp};

use credpool::admin::{Add, Reset, Snapshot};
use credpool::{ClientError, EntryKind, ProviderId, ProviderRegistry, Secret, Target};

use super::AddEntryRequest;

/// A request body → `Ok(kind)` (`api_key` or `oauth`) or an error containing the text.
fn check(body: &str, loopback: bool, expected: Result<&str, &str>) {
    check_for(body, None, loopback, expected);
}

/// [`check`] for a grant of `provider` (its token endpoints on its required domain).
fn check_for(body: &str, provider: Option<&str>, loopback: bool, expected: Result<&str, &str>) {
    let clock = ManualClock::new(Timestamp::from_secs(1_800_000_000));
    let request: AddEntryRequest = serde_json::from_str(body).unwrap();
    let spec = provider.and_then(|name| ProviderRegistry::builtin().by_name(name));
    match (
        request.into_entry(&clock, spec.as_ref(), loopback),
        expected,
    ) {
        (Ok(entry), Ok(kind)) => {
            let name = match &entry.kind {
                EntryKind::ApiKey { .. } => "api_key",
                EntryKind::OAuth(_) => "oauth",
            };
            assert_eq!(name, kind, "{body}");
        }
        (Err(error), Err(words)) => assert!(error.contains(words), "{body}: {error}"),
        (got, expected) => panic!(
            "{body}: got {:?}, expected {expected:?}",
            got.map(|e| e.label)
        ),
    }
}

#[test]
fn add_requests_need_exactly_one_secret_and_a_safe_token_url() {
    check(r#"{"label":"k","api_key":"v"}"#, false, Ok("api_key"));
    check(r#"{"label":"g","refresh_token":"r"}"#, false, Ok("oauth"));
    check(
        r#"{"label":"g","refresh_token":"r","access_token":"a","expires_in_s":60,"token_url":"https://auth.example.com/t","client_id":"c"}"#,
        false,
        Ok("oauth"),
    );
    check(
        r#"{"label":"g","refresh_token":"r","token_url":"http://127.0.0.1:9/t"}"#,
        true,
        Ok("oauth"),
    );
    check(
        r#"{"label":"g","refresh_token":"r","token_url":"http://127.0.0.1:9/t"}"#,
        false,
        Err("needs allow_insecure_loopback"),
    );
    check(
        r#"{"label":"g","refresh_token":"r","token_url":"http://example.com/t"}"#,
        true,
        Err("https"),
    );
    check(
        r#"{"label":"k"}"#,
        false,
        Err("give api_key or refresh_token"),
    );
    check(
        r#"{"label":"k","api_key":"v","refresh_token":"r"}"#,
        false,
        Err("not both"),
    );
    check(
        r#"{"label":"k","api_key":"v","client_id":"c"}"#,
        false,
        Err("belong to OAuth grants"),
    );
    check(
        r#"{"label":"k","api_key":"v","weight":0}"#,
        false,
        Err("weight"),
    );
    let huge = "k".repeat(super::MAX_SECRET_BYTES + 1);
    check(
        &format!(r#"{{"label":"k","api_key":"{huge}"}}"#),
        false,
        Err("longer than"),
    );
}

#[test]
fn token_urls_follow_the_refreshers_policy_with_the_providers_domain() {
    let grant = |url: &str| format!(r#"{{"label":"g","refresh_token":"r","token_url":"{url}"}}"#);
    let xai = Some("xai-oauth");
    check_for(
        &grant("https://auth.x.ai/oauth2/token"),
        xai,
        false,
        Ok("oauth"),
    );
    check_for(&grant("https://evil.com/token"), xai, false, Err("`x.ai`"));
    check_for(&grant("https://evilx.ai/token"), xai, false, Err("`x.ai`"));
    check_for(&grant("https://evil.com/token"), None, false, Ok("oauth"));
    check_for(&grant("http://127.0.0.1:9/token"), xai, true, Ok("oauth"));
    check_for(
        &grant("http://127.0.0.1:9/token"),
        xai,
        false,
        Err("needs allow_insecure_loopback"),
    );
    for url in [
        "https://user:pw@auth.x.ai/token",
        "https://user@auth.example.com/token",
        "not a url",
    ] {
        check_for(&grant(url), None, false, Err("user:password"));
        check_for(&grant(url), xai, true, Err("user:password"));
    }
}

#[tokio::test]
async fn get_resolves_a_target_like_the_pool() {
    // Reset resolves through the pool's own `resolve`; GET resolves the snapshot with the
    // same function, so they pick the same entry (or fail the same way).
    let pool = credpool::Credpool::builder()
        .in_memory()
        .start()
        .await
        .unwrap();
    let admin = pool.admin();
    let openai = ProviderId::new("openai");
    for label in ["a", "b", "2"] {
        let entry = credpool::api_key_entry(label, Secret::new(format!("sk-{label}")));
        admin.run(&openai, Add(entry)).await.unwrap();
    }
    let snapshot = admin.run(&openai, Snapshot).await.unwrap();
    let first_id = snapshot.entries[0].id.to_string();
    let mut targets = vec!["2", "b", "B", "1", "3", "5", "0", "nosuch", " "];
    targets.push(&first_id);
    for target in targets {
        let ours = snapshot.resolve(&Target::from(target)).cloned();
        let pools = admin.run(&openai, Reset(Target::from(target))).await;
        match (&ours, &pools) {
            (Ok(ours), Ok(pools)) => assert_eq!(ours.id, pools.id, "{target:?}"),
            (Err(ours), Err(ClientError::Pool(pools))) => assert_eq!(ours, pools, "{target:?}"),
            _ => panic!("{target:?}: get {ours:?}, pool {pools:?}"),
        }
    }
    pool.shutdown().await.unwrap();
}

#[test]
fn an_add_request_never_shows_its_secrets_in_debug() {
    let request: AddEntryRequest =
        serde_json::from_str(r#"{"label":"k","api_key":"sk-canary-debug"}"#).unwrap();
    assert!(!format!("{request:?}").contains("sk-canary"));
}
