//! `credpool admin import --from hermes` through the binary, on the Hermes `auth.json` in
//! `tests/fixtures/hermes-auth.json`: what lands in the store (kinds, order, statuses,
//! fingerprints), what is refused and why (a provider with a refused row gets nothing), a
//! second run that changes nothing, a dry run that writes nothing, `--url` refused, and no
//! secret of the file in any output.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Output;

use credpool_core::Fingerprint;
use serde_json::Value;

mod support;

use support::*;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hermes-auth.json")
}

/// Every token of the fixture: the values of its `…_token` members, wherever they sit.
fn fixture_secrets() -> Vec<String> {
    fn collect(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(members) => {
                for (key, member) in members {
                    match member.as_str() {
                        Some(text) if key.ends_with("_token") && !text.is_empty() => {
                            out.push(text.to_owned());
                        }
                        _ => collect(member, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| collect(item, out)),
            _ => {}
        }
    }
    let document = json(&std::fs::read_to_string(fixture()).unwrap());
    let mut secrets = Vec::new();
    collect(&document, &mut secrets);
    assert!(secrets.len() >= 8, "{secrets:?}");
    secrets
}

/// Asserts that neither stdout nor stderr holds a token of the fixture.
fn assert_no_secret(output: &Output) {
    let text = format!("{}{}", stdout(output), stderr(output));
    for secret in fixture_secrets() {
        assert!(
            !text.contains(&secret),
            "a secret (…{}) reached the output",
            &secret[secret.len() - 6..]
        );
    }
}

/// `credpool admin --data-dir DIR` plus `args`, checked for secrets.
fn offline(data_dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["--data-dir", data_dir.to_str().unwrap()];
    all.extend_from_slice(args);
    let output = admin(&all, &[]);
    assert_no_secret(&output);
    output
}

/// Runs the import (`extra` before the file) and returns the exit code and the JSON report.
fn import(data_dir: &Path, extra: &[&str]) -> (Option<i32>, Value) {
    let file = fixture();
    let mut args = vec!["--json", "import", "--from", "hermes"];
    args.extend_from_slice(extra);
    args.push(file.to_str().unwrap());
    let output = offline(data_dir, &args);
    assert!(
        output
            .status
            .code()
            .is_some_and(|code| code == 0 || code == 2),
        "import failed: {}\nstderr: {}",
        output.status,
        stderr(&output)
    );
    (output.status.code(), json(&stdout(&output)))
}

/// `status --json`, as a map provider → entries.
fn status(data_dir: &Path) -> serde_json::Map<String, Value> {
    let snapshots = status_json(&offline(data_dir, &["--json", "status"]));
    snapshots
        .as_array()
        .unwrap()
        .iter()
        .map(|snapshot| {
            (
                snapshot["provider"].as_str().unwrap().to_owned(),
                snapshot["entries"].clone(),
            )
        })
        .collect()
}

/// The report's rows of one provider.
fn rows<'a>(report: &'a Value, provider: &str) -> &'a Vec<Value> {
    report["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["provider"] == provider)
        .unwrap_or_else(|| panic!("no {provider} in {report:#}"))["rows"]
        .as_array()
        .unwrap()
}

fn row<'a>(report: &'a Value, provider: &str, label: &str) -> &'a Value {
    rows(report, provider)
        .iter()
        .find(|row| row["label"] == label)
        .unwrap_or_else(|| panic!("no {provider}/{label} in {report:#}"))
}

fn fingerprint(secret: &str) -> String {
    Fingerprint::of(secret).as_str().to_owned()
}

fn fresh_data_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    (dir, data_dir)
}

#[test]
fn an_import_into_an_empty_data_dir_keeps_kinds_order_statuses_and_fingerprints() {
    let (_dir, data_dir) = fresh_data_dir();
    let (code, report) = import(&data_dir, &[]);
    assert_eq!(code, Some(2), "rows were refused: {report:#}");
    assert_eq!(report["dry_run"], false);
    assert_eq!(report["complete"], false);
    assert_eq!(
        report["totals"],
        serde_json::json!({"imported": 6, "skipped": 0, "refused": 3, "held_back": 1})
    );

    let pools = status(&data_dir);
    let mut providers: Vec<&String> = pools.keys().collect();
    providers.sort();
    assert_eq!(providers, ["custom:together.ai", "openrouter", "xai-oauth"]);

    // xai-oauth: in Hermes' priority order, not file order.
    let xai = pools["xai-oauth"].as_array().unwrap();
    let labels: Vec<&str> = xai.iter().map(|e| e["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["grok-main", "grok-old"]);
    let main = &xai[0];
    assert_eq!(main["kind"], "oauth");
    assert_eq!(main["source"], "oauth");
    assert_eq!(main["priority"], 0);
    assert_eq!(main["status"], "ok");
    assert_eq!(
        main["fingerprint"],
        fingerprint("FAKE-hermes-xai-access-main-0001")
    );
    assert_eq!(main["token_expires_at"], 4_102_444_800_000_i64);
    assert_eq!(main["base_url"], "https://api.x.ai/v1");
    assert_eq!(main["usage"]["selections"], 17);
    assert_eq!(main["generation"], 1);
    assert_eq!(main["missing_secret"], false);
    let old = &xai[1];
    assert_eq!(old["priority"], 1);
    assert_eq!(old["status"], "dead");
    assert_eq!(old["dead_reason"], "invalid_grant");
    assert_eq!(old["last_error"]["status"], 401);
    assert!(old["last_error"]["message"].is_null(), "{old:#}");

    // openrouter: one healthy, one cooling down (its far reset capped at credpool's 7-day
    // ceiling), one whose reset has passed and is ok again.
    let openrouter = pools["openrouter"].as_array().unwrap();
    let labels: Vec<&str> = openrouter
        .iter()
        .map(|e| e["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["team-key", "burst-key", "spare-key"]);
    for (at, entry) in openrouter.iter().enumerate() {
        assert_eq!(entry["kind"], "api_key");
        assert_eq!(entry["source"], "manual");
        assert_eq!(entry["priority"], at);
    }
    assert_eq!(openrouter[0]["status"], "ok");
    assert_eq!(openrouter[0]["usage"]["selections"], 120);
    assert_eq!(
        openrouter[0]["fingerprint"],
        fingerprint("sk-or-v1-FAKE-hermes-openrouter-team-0003")
    );
    let burst = &openrouter[1];
    assert_eq!(burst["status"], "cooling_down");
    assert_eq!(burst["cooldown_cause"], "rate_limited");
    let remaining = burst["cooldown_remaining_s"].as_u64().unwrap();
    assert!(
        (6 * 86_400..=7 * 86_400).contains(&remaining),
        "{remaining}"
    );
    assert_eq!(openrouter[2]["status"], "ok");
    assert!(openrouter[2]["last_error"].is_null());

    let together = pools["custom:together.ai"].as_array().unwrap();
    assert_eq!(together.len(), 1);
    assert_eq!(
        together[0]["fingerprint"],
        fingerprint("FAKE-hermes-together-key-0007")
    );
    assert_eq!(together[0]["base_url"], "https://api.together.xyz/v1");

    // The report names the entries it wrote.
    let written = row(&report, "xai-oauth", "grok-main");
    assert_eq!(written["action"], "imported");
    assert_eq!(written["entry"], main["id"]);

    // The store holds them sealed: no token in clear, base64 or hex in any file but the key.
    assert_nothing_in_clear(&data_dir, &fixture_secrets(), &["master.key"]);
}

#[test]
fn a_provider_declared_in_the_config_is_imported_with_config() {
    let setup =
        Setup::new("[[providers]]\nid = \"zai\"\nbase_url = \"https://api.z.ai/api/paas/v4\"\n");
    let file = fixture();
    let output = admin(
        &[
            "--config",
            setup.config.to_str().unwrap(),
            "--json",
            "import",
            "--from",
            "hermes",
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert_no_secret(&output);
    let report = json(&stdout(&output));
    let glm = row(&report, "zai", "glm");
    assert_eq!(glm["action"], "imported", "{glm:#}");
    let pools = status(&setup.data_dir());
    let zai = pools["zai"].as_array().unwrap();
    assert_eq!(zai[0]["base_url"], "https://api.z.ai/api/paas/v4");
    assert_eq!(zai[0]["usage"]["selections"], 2);
}

#[test]
fn a_provider_with_an_unmappable_row_gets_nothing_and_every_row_says_why() {
    let (_dir, data_dir) = fresh_data_dir();
    let (_, report) = import(&data_dir, &[]);
    let claude = row(&report, "anthropic", "claude_code");
    assert_eq!(claude["action"], "refused");
    assert_eq!(claude["reason"], "borrowed");
    assert!(
        claude["detail"].as_str().unwrap().contains("Claude Code"),
        "{claude:#}"
    );
    let env = row(&report, "anthropic", "ANTHROPIC_API_KEY");
    assert_eq!(env["reason"], "borrowed");
    assert!(
        env["detail"]
            .as_str()
            .unwrap()
            .contains("env:ANTHROPIC_API_KEY")
    );
    let owned = row(&report, "anthropic", "max-plan");
    assert_eq!(owned["action"], "held_back");
    assert_eq!(owned["kind"], "oauth");
    let unknown = row(&report, "zai", "glm");
    assert_eq!(unknown["action"], "refused");
    assert_eq!(unknown["reason"], "unknown_provider");

    let pools = status(&data_dir);
    assert!(!pools.contains_key("anthropic"), "{pools:#?}");
    assert!(!pools.contains_key("zai"));

    // The text form: a table per provider, the reasons, and what to do next.
    let file = fixture();
    let text = offline(
        &data_dir,
        &[
            "import",
            "--from",
            "hermes",
            "--dry-run",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(text.status.code(), Some(2));
    let text = stdout(&text);
    assert!(text.contains("anthropic: nothing imported"), "{text}");
    assert!(text.contains("ROW  LABEL"), "{text}");
    assert!(
        text.contains("configure them in credpool as env or file entries"),
        "{text}"
    );
}

#[test]
fn a_second_import_changes_nothing() {
    let (_dir, data_dir) = fresh_data_dir();
    import(&data_dir, &[]);
    let before = status(&data_dir);
    let (code, again) = import(&data_dir, &[]);
    assert_eq!(code, Some(2), "the refused rows are still refused");
    assert_eq!(
        again["totals"],
        serde_json::json!({"imported": 0, "skipped": 6, "refused": 3, "held_back": 1})
    );
    let main = row(&again, "xai-oauth", "grok-main");
    assert_eq!(main["action"], "skipped");
    assert_eq!(main["reason"], "already_imported");
    let after = status(&data_dir);
    assert_eq!(without_countdowns(before), without_countdowns(after));
}

/// Status entries without the one field that moves with the clock.
fn without_countdowns(mut pools: serde_json::Map<String, Value>) -> serde_json::Map<String, Value> {
    for entries in pools.values_mut() {
        for entry in entries.as_array_mut().unwrap() {
            entry
                .as_object_mut()
                .unwrap()
                .remove("cooldown_remaining_s");
        }
    }
    pools
}

#[test]
fn a_dry_run_writes_nothing() {
    let (_dir, data_dir) = fresh_data_dir();
    std::fs::create_dir(&data_dir).unwrap();
    let (_, report) = import(&data_dir, &["--dry-run"]);
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["totals"]["imported"], 6);
    let main = row(&report, "xai-oauth", "grok-main");
    assert_eq!(main["action"], "would_import");
    assert_eq!(main["priority"], 0);
    assert!(main["entry"].is_null());
    assert_eq!(
        std::fs::read_dir(&data_dir).unwrap().count(),
        0,
        "the data dir stays empty"
    );
}

#[test]
fn a_label_held_with_another_secret_is_a_conflict_that_holds_its_provider_back() {
    let (_dir, data_dir) = fresh_data_dir();
    let added = admin(
        &[
            "--data-dir",
            data_dir.to_str().unwrap(),
            "add",
            "openrouter",
            "Team-Key",
            "--api-key-env",
            "OTHER_KEY",
        ],
        &[("OTHER_KEY", "sk-or-v1-FAKE-someone-else")],
    );
    assert_ok(&added);
    let (_, report) = import(&data_dir, &[]);
    let conflict = row(&report, "openrouter", "team-key");
    assert_eq!(conflict["action"], "refused");
    assert_eq!(conflict["reason"], "label_taken");
    assert_eq!(
        row(&report, "openrouter", "burst-key")["action"],
        "held_back"
    );
    let pools = status(&data_dir);
    let openrouter = pools["openrouter"].as_array().unwrap();
    assert_eq!(openrouter.len(), 1, "only the entry added before");
    assert_eq!(
        openrouter[0]["fingerprint"],
        fingerprint("sk-or-v1-FAKE-someone-else")
    );
    assert!(
        pools.contains_key("xai-oauth"),
        "other providers are imported"
    );
}

#[test]
fn import_refuses_url() {
    let file = fixture();
    let output = admin(
        &[
            "--url",
            "http://127.0.0.1:9",
            "import",
            "--from",
            "hermes",
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!output.status.success());
    let text = stderr(&output);
    assert!(text.contains("import works offline only"), "{text}");
    assert_no_secret(&output);
}
