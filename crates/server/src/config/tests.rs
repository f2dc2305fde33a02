#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use credpool::{ProviderId, Strategy};

use super::{ConfigError, SecretFrom, SeedCredential, ServeConfig, elide_strings};

const BASE: &str = "/etc/credpool";

fn parse(text: &str) -> Result<ServeConfig, ConfigError> {
    ServeConfig::parse("credpool.toml", text, Path::new(BASE))
}

/// A config that must fail: the error names `key` and `line`, and its text contains `words`.
fn check_error(text: &str, key: &str, line: usize, words: &str) {
    let error = parse(text).expect_err(text);
    assert_eq!(error.key.as_deref(), Some(key), "{error}");
    assert_eq!(error.line, Some(line), "{error}");
    let shown = error.to_string();
    assert!(shown.contains(words), "{shown:?} lacks {words:?}");
    assert!(shown.contains(&format!("line {line}")), "{shown}");
    assert!(shown.contains(&format!("key `{key}`")), "{shown}");
}

#[test]
fn a_minimal_file_takes_the_defaults() {
    let config = parse("data_dir = \"state\"\n").unwrap();
    assert_eq!(config.data_dir, PathBuf::from("/etc/credpool/state"));
    assert_eq!(config.listen.to_string(), "127.0.0.1:7878");
    assert_eq!(
        config.token_file,
        PathBuf::from("/etc/credpool/state/admin.token")
    );
    assert!(!config.allow_insecure_loopback);
    assert!(config.pools.is_empty() && config.seeds.is_empty());
    assert_eq!(config.refresher.http_timeout, Duration::from_secs(20));
    assert_eq!(config.master_key_file, None);
}

#[test]
fn the_data_plane_has_defaults_and_refuses_a_remote_address_unless_allowed() {
    let config = parse("data_dir = \"state\"\n").unwrap();
    assert_eq!(
        config.data.socket,
        PathBuf::from("/etc/credpool/state/credpool.sock")
    );
    assert_eq!(config.data.listen, None);
    assert_eq!(config.data.lease_ttl, Duration::from_secs(60));
    let config = parse(
        "data_dir = \"state\"\n[data]\nsocket = \"/run/credpool/lease.sock\"\nlisten = \"127.0.0.1:7879\"\nlease_ttl_s = 5\n",
    )
    .unwrap();
    assert_eq!(
        config.data.socket,
        PathBuf::from("/run/credpool/lease.sock")
    );
    assert_eq!(config.data.listen.unwrap().port(), 7879);
    assert_eq!(config.data.lease_ttl, Duration::from_secs(5));
    for (text, words) in [
        ("[data]\nlisten = \"0.0.0.0:7879\"\n", "allow_remote = true"),
        ("[data]\nlease_ttl_s = 0\n", "at least 1"),
        ("[data]\nsocket = \"\"\n", "must not be empty"),
        (
            "[data]\nlisten = \"127.0.0.1:7879\"\ntoken_file = \"state/admin.token\"\n",
            "not be the admin token",
        ),
    ] {
        let error = parse(&format!("data_dir = \"state\"\n{text}")).unwrap_err();
        assert!(error.to_string().contains(words), "{text}: {error}");
    }
    let long = format!(
        "data_dir = \"state\"\n[data]\nsocket = \"/{}\"\n",
        "s".repeat(120)
    );
    assert!(
        parse(&long)
            .unwrap_err()
            .to_string()
            .contains("at most 107")
    );
    let remote =
        parse("data_dir = \"state\"\n[data]\nlisten = \"0.0.0.0:7879\"\nallow_remote = true\n")
            .unwrap();
    assert!(remote.data.listen.is_some());
}

#[test]
fn hosts_are_host_names_and_the_refresh_loop_guard_can_be_set() {
    let error = parse(
        "data_dir = \"d\"\n[[providers]]\nid = \"custom:fake\"\nhosts = [\"127.0.0.1:8080\"]\n",
    )
    .unwrap_err();
    assert!(error.to_string().contains("not a host name"), "{error}");
    let config =
        parse("data_dir = \"d\"\n[[providers]]\nid = \"xai-oauth\"\nrefresh_loop_guard_s = 2\n")
            .unwrap();
    assert_eq!(config.pools[0].1.refresh_loop_guard, Duration::from_secs(2));
}

#[test]
fn the_master_key_file_is_resolved_beside_the_config_and_never_empty() {
    let config = parse("data_dir = \"state\"\nmaster_key_file = \"keys/master.key\"\n").unwrap();
    assert_eq!(
        config.master_key_file,
        Some(PathBuf::from("/etc/credpool/keys/master.key"))
    );
    let error = parse("data_dir = \"state\"\nmaster_key_file = \"\"\n").unwrap_err();
    assert!(error.to_string().contains("master_key_file"), "{error}");
}

#[test]
fn a_full_file_is_read_into_providers_pools_and_seeds() {
    let text = r#"
data_dir = "/var/lib/credpool"
allow_insecure_loopback = true

[admin]
listen = "127.0.0.1:0"
token_file = "token"

[refresher]
http_timeout_s = 5
backoff_initial_s = 1
backoff_max_s = 8
host_limit_requests = 100
host_limit_window_s = 10

[[providers]]
id = "xai-oauth"
strategy = "round_robin"
token_url = "http://127.0.0.1:9000/oauth/token"
base_url = "http://127.0.0.1:9000/v1"
client_id = "test-client"
refresh_skew_s = 30
max_leases_per_entry = 4
cooldown = { auth = 10, rate_limited = 20 }

[[providers.entries]]
label = "grok-main"
refresh_token_file = "secrets/grok.rt"

[[providers.entries]]
label = "grok-two"
refresh_token_env = "GROK_TWO_RT"
token_url = "http://127.0.0.1:9001/oauth/token"
priority = 7

[[providers]]
id = "openai"

[[providers.entries]]
label = "key-1"
api_key_env = "OPENAI_KEY_1"
weight = 3

[[providers]]
id = "together"
base_url = "https://api.together.xyz/v1"
hosts = ["api.together.xyz"]
auth_header = "x_api_key"

[[providers.entries]]
label = "t"
api_key_file = "/run/secrets/together"
"#;
    let config = parse(text).unwrap();
    assert_eq!(config.listen.port(), 0);
    assert_eq!(config.token_file, PathBuf::from("/etc/credpool/token"));
    assert!(config.allow_insecure_loopback);
    assert_eq!(config.refresher.http_timeout, Duration::from_secs(5));
    assert_eq!(config.refresher.backoff_max, Duration::from_secs(8));
    assert_eq!(config.refresher.host_limit.max_requests, 100);
    assert_eq!(config.refresher.host_limit.window, Duration::from_secs(10));

    let xai = config.providers.get(&ProviderId::new("xai-oauth")).unwrap();
    let endpoint = xai.token_endpoint.unwrap();
    assert_eq!(endpoint.urls, ["http://127.0.0.1:9000/oauth/token"]);
    assert_eq!(endpoint.discovery_url, None);
    assert_eq!(endpoint.client_id.as_deref(), Some("test-client"));
    assert_eq!(xai.base_url.as_deref(), Some("http://127.0.0.1:9000/v1"));
    assert_eq!(xai.refresh_skew.for_lifetime(None), Duration::from_secs(30));

    let together = config.providers.get(&ProviderId::new("together")).unwrap();
    assert!(!together.is_oauth());
    assert_eq!(together.hosts, ["api.together.xyz"]);

    let (id, pool) = &config.pools[0];
    assert_eq!(id.as_str(), "xai-oauth");
    assert_eq!(pool.strategy, Strategy::RoundRobin);
    assert_eq!(pool.max_leases_per_entry, 4);
    assert_eq!(pool.cooldown.auth, Duration::from_secs(10));
    assert_eq!(pool.cooldown.billing, Duration::from_secs(3600));
    assert_eq!(config.pools.len(), 3);

    let labels: Vec<_> = config.seeds.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(labels, ["grok-main", "grok-two", "key-1", "t"]);
    assert!(matches!(
        &config.seeds[0].credential,
        SeedCredential::RefreshToken(SecretFrom::File(path)) if path == Path::new("/etc/credpool/secrets/grok.rt")
    ));
    assert!(matches!(
        &config.seeds[1].credential,
        SeedCredential::RefreshToken(SecretFrom::Env(name)) if name == "GROK_TWO_RT"
    ));
    assert_eq!(
        config.seeds[1].token_url.as_deref(),
        Some("http://127.0.0.1:9001/oauth/token")
    );
    assert_eq!(config.seeds[1].priority, Some(7));
    assert_eq!(config.seeds[2].weight, Some(3));
    assert!(matches!(
        &config.seeds[3].credential,
        SeedCredential::ApiKey(SecretFrom::File(path)) if path == Path::new("/run/secrets/together")
    ));
}

#[test]
fn bad_keys_and_values_are_reported_with_their_key_and_line() {
    check_error(
        "data_dir = \"d\"\nlisten = \"x\"\n",
        "listen",
        2,
        "unknown field",
    );
    check_error(
        "data_dir = \"d\"\n[admin]\nlisten = \"nonsense\"\n",
        "listen",
        3,
        "invalid socket address",
    );
    check_error(
        "[admin]\nlisten = \"127.0.0.1:1\"\n",
        "data_dir",
        1,
        "missing field",
    );
    check_error(
        "data_dir = \"d\"\n\n[[providers]]\nid = \"openai\"\nstrategy = \"fastest\"\n",
        "strategy",
        5,
        "unknown variant, expected one of `fill_first`, `round_robin`",
    );
    check_error(
        "data_dir = \"d\"\nallow_insecure_loopback = true\n[[providers]]\nid = \"xai-oauth\"\ntoken_url = \"https://evil.com/token\"\n",
        "token_url",
        5,
        "must be on `x.ai`",
    );
    check_error(
        "data_dir = \"d\"\n[[providers]]\nid = \"xai-oauth\"\n[[providers.entries]]\nlabel = \"g\"\nrefresh_token_env = \"RT\"\ntoken_url = \"https://auth.evilx.ai/token\"\n",
        "token_url",
        7,
        "must be on `x.ai`",
    );
    check_error(
        "data_dir = \"d\"\n[[providers]]\nid = \"custom:acme\"\ntoken_url = \"https://user:pw@auth.acme.test/token\"\n",
        "token_url",
        4,
        "without user:password",
    );
    check_error(
        "data_dir = \"d\"\n[[providers]]\nid = \"openai\"\n[[providers.entries]]\nlabel = \"k\"\napi_key_env = \"K\"\npriorty = 1\n",
        "priorty",
        7,
        "unknown field",
    );
    check_error(
        "data_dir = \"d\"\n[[providers]]\nid = \"openai\"\ncooldown = { auth = 5, never = 1 }\n",
        "never",
        4,
        "unknown field",
    );
    check_error(
        "data_dir = \"d\"\n[[providers]]\nid = \"openia\"\n",
        "providers.id",
        3,
        "unknown provider `openia`",
    );
    check_error(
        "data_dir = \"d\"\n[[providers]]\nid = \"openai\"\n[[providers]]\nid = \"OpenAI\"\n",
        "providers.id",
        5,
        "configured twice",
    );
    check_error(
        "data_dir = \"d\"\n[[providers]]\nid = \"openai\"\n[[providers.entries]]\nlabel = \"k\"\n",
        "label",
        5,
        "has no secret",
    );
    check_error(
        "data_dir = \"d\"\n[[providers]]\nid = \"openai\"\n[[providers.entries]]\nlabel = \"k\"\napi_key_env = \"A\"\napi_key_file = \"f\"\n",
        "label",
        5,
        "more than one secret source",
    );
    check_error(
        "data_dir = \"d\"\n[[providers]]\nid = \"openai\"\n[[providers.entries]]\nlabel = \"k\"\napi_key_env = \"A\"\n[[providers.entries]]\nlabel = \"K\"\napi_key_env = \"B\"\n",
        "label",
        8,
        "used twice",
    );
    check_error(
        "data_dir = \"d\"\n[[providers]]\nid = \"openai\"\n[[providers.entries]]\nlabel = \"k\"\nrefresh_token_env = \"A\"\n",
        "refresh_token_env",
        5,
        "takes API keys",
    );
    check_error(
        "data_dir = \"d\"\n[[providers]]\nid = \"openai\"\ntoken_url = \"https://auth.example.com/token\"\n",
        "token_url",
        4,
        "takes API keys",
    );
    check_error(
        "data_dir = \"d\"\n[[providers]]\nid = \"xai-oauth\"\ntoken_url = \"http://127.0.0.1:9/token\"\n",
        "token_url",
        4,
        "allow_insecure_loopback",
    );
    check_error(
        "data_dir = \"d\"\nallow_insecure_loopback = true\n[[providers]]\nid = \"xai-oauth\"\ntoken_url = \"http://example.com/token\"\n",
        "token_url",
        5,
        "must be https",
    );
    check_error(
        "data_dir = \"d\"\n[[providers]]\nid = \"openai\"\nbase_url = \"not a url\"\n",
        "base_url",
        4,
        "not a URL",
    );
    check_error(
        "data_dir = \"d\"\n[refresher]\nbackoff_initial_s = 10\nbackoff_max_s = 5\n",
        "refresher.backoff_max_s",
        4,
        "must not be shorter",
    );
    check_error(
        "data_dir = \"d\"\n[refresher]\nhttp_timeout_s = 0\n",
        "refresher.http_timeout_s",
        3,
        "at least 1",
    );
    check_error(
        "data_dir = \"d\"\n[[providers]]\nid = \"openai\"\nmax_leases_per_entry = -1\n",
        "max_leases_per_entry",
        4,
        "invalid value",
    );
}

#[test]
fn inline_secrets_are_refused_unless_allowed_and_never_echoed() {
    let text = "data_dir = \"d\"\n[[providers]]\nid = \"openai\"\n[[providers.entries]]\nlabel = \"k\"\napi_key = \"sk-canary-inline\"\n";
    let error = parse(text).unwrap_err();
    assert_eq!(error.key.as_deref(), Some("api_key"));
    assert_eq!(error.line, Some(6));
    assert!(!error.to_string().contains("sk-canary"), "{error}");

    let allowed = format!("allow_inline_secrets = true\n{text}");
    let config = parse(&allowed).unwrap();
    assert!(matches!(
        &config.seeds[0].credential,
        SeedCredential::ApiKey(SecretFrom::Inline(secret)) if secret.expose() == "sk-canary-inline"
    ));
    assert!(!format!("{config:?}").contains("sk-canary"));

    // a secret typed into a numeric key is not echoed either
    let misplaced = "data_dir = \"d\"\n[[providers]]\nid = \"openai\"\n[[providers.entries]]\nlabel = \"k\"\napi_key_env = \"K\"\npriority = \"sk-canary-misplaced\"\n";
    let error = parse(misplaced).unwrap_err();
    assert_eq!(error.key.as_deref(), Some("priority"));
    assert_eq!(error.line, Some(7));
    assert!(!error.to_string().contains("sk-canary"), "{error}");
}

#[test]
fn a_secret_typed_as_an_env_var_name_is_refused_and_never_echoed() {
    for (key, name) in [
        ("api_key_env", "sk-proj-CANARY-env-name"),
        ("refresh_token_env", "sk-proj-CANARY-env-name"),
        ("api_key_env", "1ABC"),
        ("api_key_env", "A B"),
        ("api_key_env", ""),
    ] {
        let provider = if key == "api_key_env" {
            "openai"
        } else {
            "xai-oauth"
        };
        let text = format!(
            "data_dir = \"d\"\n[[providers]]\nid = \"{provider}\"\n[[providers.entries]]\nlabel = \"k\"\n{key} = \"{name}\"\n"
        );
        let error = parse(&text).unwrap_err();
        assert_eq!(error.key.as_deref(), Some(key), "{error}");
        assert_eq!(error.line, Some(6), "{error}");
        let shown = error.to_string();
        assert!(
            shown.contains("not an environment variable name"),
            "{shown}"
        );
        assert!(name.is_empty() || !shown.contains(name), "{shown}");
    }
    for name in ["OPENAI_API_KEY", "_X", "a1", "X"] {
        let text = format!(
            "data_dir = \"d\"\n[[providers]]\nid = \"openai\"\n[[providers.entries]]\nlabel = \"k\"\napi_key_env = \"{name}\"\n"
        );
        assert!(parse(&text).is_ok(), "{name}");
    }
}

#[test]
fn string_values_are_elided_from_type_errors() {
    let cases = [
        (
            "invalid type: string \"sk-123\", expected u32",
            "invalid type: string, expected u32",
        ),
        (
            "invalid value: string \"a\", expected a positive integer",
            "invalid value: string, expected a positive integer",
        ),
        (
            "unknown field `x`, expected `y`",
            "unknown field `x`, expected `y`",
        ),
        (
            "invalid type: integer `5`, expected a string",
            "invalid type: integer `5`, expected a string",
        ),
        (
            "unknown variant `sk-proj-123`, expected one of `fill_first`, `round_robin`",
            "unknown variant, expected one of `fill_first`, `round_robin`",
        ),
        (
            "unknown variant `sk`, expected `a`, `b``, expected one of `x`",
            "unknown variant, expected one of `x`",
        ),
        (
            "unknown variant `sk-1`, there are no variants",
            "unknown variant, there are no variants",
        ),
        ("unknown variant `sk-truncated", "unknown variant"),
    ];
    for (input, expected) in cases {
        assert_eq!(elide_strings(input), expected, "{input}");
    }
}

#[test]
fn custom_providers_with_a_token_url_take_oauth_grants() {
    let text = r#"
data_dir = "d"
[[providers]]
id = "custom:fake"
token_url = "https://auth.fake.test/token"
base_url = "https://api.fake.test/v1/"
[[providers.entries]]
label = "g"
refresh_token_env = "FAKE_RT"
client_id = "cli"
"#;
    let config = parse(text).unwrap();
    let spec = config
        .providers
        .get(&ProviderId::new("custom:fake"))
        .unwrap();
    assert!(spec.is_oauth());
    assert_eq!(spec.base_url.as_deref(), Some("https://api.fake.test/v1"));
    assert_eq!(config.seeds[0].client_id.as_deref(), Some("cli"));
}

#[test]
fn the_full_example_in_config_md_parses() {
    let doc = include_str!("../../../../docs/CONFIG.md");
    let start = doc.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let end = start + doc[start..].find("```").expect("the block's end");
    let config = parse(&doc[start..end]).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(config.pools.len(), 3);
    assert_eq!(config.seeds.len(), 5);
    let xai = config.providers.get(&ProviderId::new("xai-oauth")).unwrap();
    assert_eq!(
        xai.token_endpoint.unwrap().urls,
        ["https://auth.x.ai/oauth2/token"]
    );
}

#[test]
fn a_secret_pasted_on_a_line_of_its_own_is_never_quoted() {
    for secret in [
        "dGhpc2lzYXNlY3JldGtleXZhbHVl==",
        "c2VjcmV0a2V5d2l0aHBhZGRpbmc=",
        "sk-proj-AbCdEf0123456789=",
        "3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c=",
    ] {
        let text = format!("data_dir = \"state\"\n{secret}\n");
        let error = parse(&text).expect_err(&text).to_string();
        let stem = secret.trim_end_matches('=');
        assert!(
            !error.contains(stem),
            "{error:?} quotes the secret {secret:?}"
        );
        assert!(error.contains("line 2"), "{error}");
    }
    // An unknown key that looks like a key is named (a typo is easy to find).
    let error = parse("data_dir = \"state\"\nstrategy_typo = 1\n").unwrap_err();
    assert!(error.to_string().contains("strategy_typo"), "{error}");
    // One that does not is not.
    let error = parse("data_dir = \"state\"\nsk_live_AbCd0123456789xyz = 1\n").unwrap_err();
    assert!(!error.to_string().contains("AbCd0123"), "{error}");
}

#[test]
fn admin_limits_have_defaults_and_are_checked() {
    let config = parse("data_dir = \"state\"\n").unwrap();
    assert_eq!(
        config.max_connections,
        crate::listener::DEFAULT_MAX_CONNECTIONS
    );
    assert_eq!(config.header_read_timeout, Duration::from_secs(10));
    let config =
        parse("data_dir = \"state\"\n[admin]\nmax_connections = 64\nheader_read_timeout_s = 3\n")
            .unwrap();
    assert_eq!(config.max_connections, 64);
    assert_eq!(config.header_read_timeout, Duration::from_secs(3));
    check_error(
        "data_dir = \"state\"\n[admin]\nmax_connections = 0\n",
        "admin.max_connections",
        3,
        "at least 1",
    );
}

#[test]
fn labels_are_printable_and_bounded() {
    let entry = |label: &str| {
        format!(
            "data_dir = \"state\"\n[[providers]]\nid = \"openai\"\n[[providers.entries]]\nlabel = {label}\napi_key_env = \"K\"\n"
        )
    };
    check_error(
        &entry("\"a\\nERROR forged\""),
        "label",
        5,
        "control characters",
    );
    check_error(
        &entry("\"evil\\u001b[31m\""),
        "label",
        5,
        "control characters",
    );
    check_error(
        &entry(&format!("\"{}\"", "x".repeat(129))),
        "label",
        5,
        "longer than 128",
    );
    check_error(&entry("\"  \""), "label", 5, "must not be empty");
    assert!(parse(&entry("\"team key\"")).is_ok());
}
