//! Scoring the classifier against recorded provider answers with known meanings.
//!
//! A case is one JSON line (the corpus format of `crates/core/tests/corpus/*.jsonl`):
//!
//! ```json
//! {"provider":"groq","status":429,"headers":{"retry-after":"2"},"body":"…",
//!  "entry_kind":"oauth","received_at":"2026-05-04T19:24:56Z","source":"https://…",
//!  "expected_class":"rate_limited","expected_reset_s":578.016,"reasoning":"…"}
//! ```
//!
//! `entry_kind`, `received_at`, `headers` and `status` may be missing; `received_at` is "now"
//! for that answer (replay), [`DEFAULT_RECEIVED_AT`] otherwise. A class is right when the coarse
//! class matches. A reset is right when both are absent, or both present and within
//! [`RESET_TOLERANCE_SECS`] or [`RESET_TOLERANCE_RATIO`] of the expected delay (whichever is
//! larger); expected delays past the ceiling are scored at the ceiling, as the classifier
//! clamps them.
//!
//! **Invariants:** scoring is pure (no clock, no I/O); a malformed line is an error for that
//! line, never a panic.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::Value;

use super::{ClassifyInput, classify_explained};
use crate::clock::Timestamp;
use crate::entry::CredentialKind;
use crate::outcome::Class;
use crate::reset::parse_rfc3339;

/// "Now" for cases without `received_at`: 2026-08-29T10:40:00Z. Their resets are relative.
pub const DEFAULT_RECEIVED_AT: Timestamp = Timestamp(1_788_000_000_000);

/// The absolute slack allowed on a reset, in seconds (clocks, rounding of prose).
pub const RESET_TOLERANCE_SECS: f64 = 1.0;

/// The relative slack allowed on a reset (prose such as "9h22m20s" drops the fraction).
pub const RESET_TOLERANCE_RATIO: f64 = 0.02;

/// One recorded answer with its expected meaning.
#[derive(Debug, Clone)]
pub struct Case {
    /// The provider named in the line.
    pub provider: Option<String>,
    /// The HTTP status, if any.
    pub status: Option<u16>,
    /// The response headers.
    pub headers: Vec<(String, String)>,
    /// The body as recorded.
    pub body: String,
    /// The credential kind, when the line states it.
    pub entry_kind: Option<CredentialKind>,
    /// When the answer was received; "now" for the classification.
    pub received_at: Option<Timestamp>,
    /// The expected coarse class.
    pub expected_class: Class,
    /// The expected reset, in seconds after `received_at`, or `None` for no reset.
    pub expected_reset_secs: Option<f64>,
}

/// Parses a credential kind as written in batch and corpus lines.
pub fn parse_entry_kind(text: &str) -> Option<CredentialKind> {
    match text {
        "oauth" => Some(CredentialKind::OAuth),
        "api-key" | "api_key" | "apikey" => Some(CredentialKind::ApiKey),
        _ => None,
    }
}

/// Parses a coarse class by its snake_case name.
pub fn parse_class(text: &str) -> Option<Class> {
    [
        Class::AuthExpired,
        Class::AuthInvalid,
        Class::RateLimited,
        Class::Billing,
        Class::Transient,
        Class::Other,
    ]
    .into_iter()
    .find(|class| class.as_str() == text)
}

impl Case {
    /// Parses one corpus line; the error says what is wrong with it.
    pub fn parse(line: &str) -> Result<Case, String> {
        let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
        let field = |name: &str| value.get(name).filter(|v| !v.is_null());
        let text = |name: &str| field(name).and_then(Value::as_str);
        let status = match field("status") {
            None => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|n| u16::try_from(n).ok())
                    .ok_or("status is not a number")?,
            ),
        };
        let mut headers = Vec::new();
        if let Some(map) = field("headers").and_then(Value::as_object) {
            for (name, value) in map {
                let value = match value {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => return Err(format!("header {name:?} is not a string")),
                };
                headers.push((name.clone(), value));
            }
        }
        let entry_kind = match text("entry_kind") {
            None => None,
            Some(kind) => Some(parse_entry_kind(kind).ok_or(format!("entry_kind {kind:?}"))?),
        };
        let received_at = match text("received_at") {
            None => None,
            Some(at) => Some(parse_rfc3339(at).ok_or(format!("received_at {at:?}"))?),
        };
        let class = text("expected_class").ok_or("missing expected_class")?;
        Ok(Case {
            provider: text("provider").map(str::to_owned),
            status,
            headers,
            body: text("body").ok_or("missing body")?.to_owned(),
            entry_kind,
            received_at,
            expected_class: parse_class(class).ok_or(format!("unknown class {class:?}"))?,
            expected_reset_secs: field("expected_reset_s").and_then(Value::as_f64),
        })
    }
}

/// The result of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// Where the case came from (`file:line`).
    pub label: String,
    /// The provider, or `-`.
    pub provider: String,
    /// The expected class.
    pub expected_class: Class,
    /// The class the classifier gave.
    pub got_class: Class,
    /// The expected reset, in seconds.
    pub expected_reset_secs: Option<f64>,
    /// The classifier's reset, in seconds after "now".
    pub got_reset_secs: Option<f64>,
    /// The rule that decided, and its evidence, in one line.
    pub explanation: String,
}

impl CaseResult {
    /// Tells whether the class is right.
    pub fn class_ok(&self) -> bool {
        self.expected_class == self.got_class
    }

    /// Tells whether the reset is right (see the module docs for the tolerance).
    pub fn reset_ok(&self) -> bool {
        match (self.expected_reset_secs, self.got_reset_secs) {
            (None, None) => true,
            (Some(expected), Some(got)) => {
                let slack = RESET_TOLERANCE_SECS.max(expected * RESET_TOLERANCE_RATIO);
                (expected - got).abs() <= slack
            }
            _ => false,
        }
    }
}

/// Classifies one case with "now" at its `received_at`.
pub fn run_case(label: String, case: &Case, ceiling: Duration) -> CaseResult {
    let now = case.received_at.unwrap_or(DEFAULT_RECEIVED_AT);
    let input = ClassifyInput {
        provider: case.provider.as_deref(),
        entry_kind: case.entry_kind,
        status: case.status,
        headers: &case.headers,
        body: case.body.as_bytes(),
    };
    let (classification, explanation) = classify_explained(&input, now, ceiling);
    let ceiling_secs = ceiling.as_secs_f64();
    CaseResult {
        label,
        provider: case.provider.clone().unwrap_or_else(|| "-".to_owned()),
        expected_class: case.expected_class,
        got_class: classification.kind.class(),
        expected_reset_secs: case.expected_reset_secs.map(|s| s.min(ceiling_secs)),
        got_reset_secs: classification
            .reset_at
            .map(|at| (at.millis() - now.millis()) as f64 / 1000.0),
        explanation: format!("{} ({})", classification.kind.name(), explanation.to_line()),
    }
}

/// The results of a set of cases.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// One result per case, in input order.
    pub results: Vec<CaseResult>,
}

impl Report {
    /// The share of cases whose class is right, from 0 to 1 (1 for no cases).
    pub fn class_accuracy(&self) -> f64 {
        ratio(
            self.results.iter().filter(|r| r.class_ok()).count(),
            self.results.len(),
        )
    }

    /// The share of cases whose reset is right, from 0 to 1 (1 for no cases).
    pub fn reset_accuracy(&self) -> f64 {
        ratio(
            self.results.iter().filter(|r| r.reset_ok()).count(),
            self.results.len(),
        )
    }

    /// One line per wrong case: label, provider, expected and got, and the explanation.
    pub fn mismatches(&self) -> Vec<String> {
        self.results
            .iter()
            .filter(|r| !r.class_ok() || !r.reset_ok())
            .map(|r| {
                format!(
                    "{} [{}] expected {} reset {} — got {} reset {} — {}",
                    r.label,
                    r.provider,
                    r.expected_class.as_str(),
                    secs(r.expected_reset_secs),
                    r.got_class.as_str(),
                    secs(r.got_reset_secs),
                    r.explanation
                )
            })
            .collect()
    }

    /// Renders accuracy per expected class, per provider and in total as a text table.
    pub fn table(&self) -> String {
        let mut by_class: BTreeMap<&'static str, Tally> = BTreeMap::new();
        let mut by_provider: BTreeMap<&str, Tally> = BTreeMap::new();
        let mut total = Tally::default();
        for result in &self.results {
            by_class
                .entry(result.expected_class.as_str())
                .or_default()
                .add(result);
            by_provider.entry(&result.provider).or_default().add(result);
            total.add(result);
        }
        let mut out = String::new();
        let mut section = |title: &str, rows: Vec<(&str, &Tally)>| {
            let _ = writeln!(out, "| {title} | lines | class | reset |");
            let _ = writeln!(out, "|---|---:|---:|---:|");
            for (name, tally) in rows {
                let _ = writeln!(out, "{}", tally.row(name));
            }
            let _ = writeln!(out);
        };
        section("class", by_class.iter().map(|(k, v)| (*k, v)).collect());
        section(
            "provider",
            by_provider.iter().map(|(k, v)| (*k, v)).collect(),
        );
        section("all", vec![("total", &total)]);
        out
    }
}

/// Counts of one table row.
#[derive(Debug, Default)]
struct Tally {
    lines: usize,
    class_ok: usize,
    reset_ok: usize,
}

impl Tally {
    fn add(&mut self, result: &CaseResult) {
        self.lines += 1;
        self.class_ok += usize::from(result.class_ok());
        self.reset_ok += usize::from(result.reset_ok());
    }

    fn row(&self, name: &str) -> String {
        format!(
            "| {name} | {} | {:.1} % | {:.1} % |",
            self.lines,
            100.0 * ratio(self.class_ok, self.lines),
            100.0 * ratio(self.reset_ok, self.lines)
        )
    }
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        1.0
    } else {
        part as f64 / whole as f64
    }
}

fn secs(value: Option<f64>) -> String {
    value.map_or_else(|| "none".to_owned(), |s| format!("{s:.1}s"))
}
