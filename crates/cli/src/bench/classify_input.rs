//! Classification throughput: a generator of mixed provider answers and the in-memory rate of
//! [`credpool_core::classify`] over them.
//!
//! Fourteen answer shapes taken from real providers (OpenAI, Codex, Anthropic, xAI,
//! OpenRouter, Nous and bare transport errors) are cycled with varying request ids, retry
//! hints and reset times. `credpool bench --classify-input N` writes the same lines as
//! `credpool classify --batch` input, so the command-line rate can be measured on the
//! exact mix the bench uses.
//!
//! **Invariant:** the mix is deterministic for a given `N` (a fixed seed), so two runs and the
//! command-line measurement classify the same lines.

use std::io::{self, BufWriter, Write};
use std::time::{Duration, Instant};

use credpool_core::classify::{ClassifyInput, classify};
use credpool_core::{Clock, CooldownConfig, CredentialKind, SystemClock};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// One answer shape; `{n}` in a header value or the body becomes a number per line.
struct Shape {
    provider: Option<&'static str>,
    entry_kind: Option<&'static str>,
    status: Option<u16>,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
}

const SHAPES: [Shape; 14] = [
    Shape {
        provider: Some("openai"),
        entry_kind: Some("api-key"),
        status: Some(401),
        headers: &[("x-request-id", "req_{n}")],
        body: r#"{"error":{"message":"Incorrect API key provided: sk-proj-abc1********************xyz9. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
    },
    Shape {
        provider: Some("openai"),
        entry_kind: None,
        status: Some(429),
        headers: &[("retry-after", "{n}"), ("x-ratelimit-reset-tokens", "{n}s")],
        body: r#"{"error":{"message":"Rate limit reached for gpt-4o in organization org-abc on tokens per min (TPM): Limit 30000, Used 29000, Requested 2000. Please try again in {n}s.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#,
    },
    Shape {
        provider: Some("openai"),
        entry_kind: None,
        status: Some(429),
        headers: &[],
        body: r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#,
    },
    Shape {
        provider: Some("openai"),
        entry_kind: None,
        status: Some(503),
        headers: &[],
        body: r#"{"error":{"message":"The engine is currently overloaded, please try again later","type":"server_error","param":null,"code":null}}"#,
    },
    Shape {
        provider: Some("openai-codex"),
        entry_kind: Some("oauth"),
        status: Some(401),
        headers: &[],
        body: r#"{"error":{"message":"Provided authentication token is expired. Please try signing in again.","type":null,"code":"token_expired","param":null},"status":401}"#,
    },
    Shape {
        provider: Some("openai-codex"),
        entry_kind: Some("oauth"),
        status: Some(429),
        headers: &[],
        body: r#"{"error":{"type":"usage_limit_reached","message":"The usage limit has been reached","plan_type":"plus","resets_in_seconds":{n}}}"#,
    },
    Shape {
        provider: Some("anthropic"),
        entry_kind: Some("api-key"),
        status: Some(401),
        headers: &[("request-id", "req_011C{n}")],
        body: r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"},"request_id":"req_011C{n}"}"#,
    },
    Shape {
        provider: Some("anthropic"),
        entry_kind: None,
        status: Some(429),
        headers: &[("retry-after", "{n}")],
        body: r#"{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed the rate limit for your organization of 50,000 input tokens per minute."}}"#,
    },
    Shape {
        provider: Some("anthropic"),
        entry_kind: None,
        status: Some(529),
        headers: &[],
        body: r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    },
    Shape {
        provider: Some("anthropic"),
        entry_kind: None,
        status: Some(400),
        headers: &[],
        body: r#"{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."}}"#,
    },
    Shape {
        provider: Some("xai-oauth"),
        entry_kind: Some("oauth"),
        status: Some(403),
        headers: &[],
        body: r#"{"code":"unauthenticated:bad-credentials","error":"The provided credentials are invalid or expired."}"#,
    },
    Shape {
        provider: Some("xai-oauth"),
        entry_kind: None,
        status: Some(429),
        headers: &[],
        body: r#"{"code":"Some resource has been exhausted","error":"Too many requests, please slow down"}"#,
    },
    Shape {
        provider: Some("openrouter"),
        entry_kind: None,
        status: Some(402),
        headers: &[],
        body: r#"{"error":{"code":402,"message":"Insufficient credits. Add more using https://openrouter.ai/settings/credits"}}"#,
    },
    Shape {
        provider: None,
        entry_kind: None,
        status: None,
        headers: &[],
        body: "error sending request for url (https://inference-api.nousresearch.com/v1/chat/completions): connection reset by peer (os error {n})",
    },
];

/// One generated answer, owned.
#[derive(Debug, Serialize)]
pub(crate) struct Line {
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    headers: serde_json::Map<String, serde_json::Value>,
    body: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    entry_kind: Option<&'static str>,
    #[serde(skip)]
    header_pairs: Vec<(String, String)>,
}

/// Generates `count` lines of the mix (deterministic).
pub(crate) fn generate(count: usize) -> Vec<Line> {
    let mut rng = SmallRng::seed_from_u64(0x00c1_a551_f1ed);
    (0..count)
        .map(|i| {
            let shape = &SHAPES[i % SHAPES.len()];
            let n: u32 = rng.random_range(1..3600);
            let header_pairs: Vec<(String, String)> = shape
                .headers
                .iter()
                .map(|(name, value)| ((*name).to_owned(), value.replace("{n}", &n.to_string())))
                .collect();
            let headers = header_pairs
                .iter()
                .map(|(name, value)| (name.clone(), serde_json::Value::from(value.clone())))
                .collect();
            Line {
                provider: shape.provider,
                status: shape.status,
                headers,
                body: shape.body.replace("{n}", &n.to_string()),
                entry_kind: shape.entry_kind,
                header_pairs,
            }
        })
        .collect()
}

/// Writes `count` lines as `credpool classify --batch` input to stdout.
pub(crate) fn write_input(count: usize) -> anyhow::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    for line in generate(count) {
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// Classification throughput over the mix.
#[derive(Debug)]
pub(crate) struct ClassifyResult {
    /// Lines classified.
    pub(crate) lines: usize,
    /// Lines per second through `credpool_core::classify` (input already in memory).
    pub(crate) lines_per_s: f64,
    /// How many distinct classes the mix produced (a sanity check of the mix).
    pub(crate) classes: usize,
}

/// Classifies `count` generated lines in memory, `rounds` times, and keeps the median round.
pub(crate) fn throughput(count: usize, rounds: usize) -> ClassifyResult {
    let lines = generate(count);
    let now = SystemClock.now();
    let ceiling = CooldownConfig::default().reset_ceiling;
    let mut times: Vec<Duration> = Vec::new();
    let mut classes = std::collections::BTreeSet::new();
    for round in 0..rounds.max(1) {
        let started = Instant::now();
        for line in &lines {
            let input = ClassifyInput {
                provider: line.provider,
                entry_kind: match line.entry_kind {
                    Some("oauth") => Some(CredentialKind::OAuth),
                    Some(_) => Some(CredentialKind::ApiKey),
                    None => None,
                },
                status: line.status,
                headers: &line.header_pairs,
                body: line.body.as_bytes(),
            };
            let classification = classify(&input, now, ceiling);
            if round == 0 {
                classes.insert(classification.kind.class().as_str());
            }
            std::hint::black_box(classification);
        }
        times.push(started.elapsed());
    }
    times.sort_unstable();
    let secs = times[times.len() / 2].as_secs_f64();
    ClassifyResult {
        lines: count,
        lines_per_s: if secs > 0.0 { count as f64 / secs } else { 0.0 },
        classes: classes.len(),
    }
}
