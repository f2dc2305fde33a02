//! Reset-time parsing: when a provider says a limit lifts.
//!
//! Providers state reset times in many places and shapes. This module turns them into one
//! absolute [`Timestamp`]; [`crate::classify`] is its only caller in the request path.
//!
//! Sources are read in four tiers; the first tier that yields a time decides, and within a tier
//! the **earliest** time wins (the most specific statement about this failure):
//!
//! 1. `Retry-After` / `retry-after-ms` headers: the provider's instruction for this response;
//! 2. structured fields anywhere in the JSON body (`retryDelay`, `quotaResetDelay`,
//!    `quotaResetTimeStamp`, `resets_at`, `resets_in_seconds`, `reset_at`, `retry_after`,
//!    `X-RateLimit-Reset` copied into OpenRouter's metadata, …);
//! 3. rate-limit bucket headers (`x-ratelimit-reset-requests: 6m0s`,
//!    `anthropic-ratelimit-unified-reset: <epoch>`, `x-codex-primary-reset-after-seconds`):
//!    when a sibling header marks buckets as exhausted (`…-remaining: 0`, `…-status: rejected`,
//!    `…-used-percent: 100`) the **latest** of the exhausted buckets wins (all of them must
//!    refill), otherwise the earliest bucket;
//! 4. phrases in the provider's message (`try again in 1.98s`, `retry after 30 seconds`,
//!    `resets in 9h22m20s`, `regain access on 2026-09-01 at 00:00 UTC`).
//!
//! So a structured field beats prose when the two disagree, and an explicit `Retry-After`
//! beats both; bucket headers ride on every response and only decide when nothing more
//! specific was said.
//!
//! Bare numbers where an instant is expected follow one rule ([`number_to_instant`]): above
//! 10¹² they are epoch milliseconds, from 10⁹ up they are epoch seconds (10⁹ s is
//! 2001-09-09, so no real deadline is lost), below that they are seconds from now.
//!
//! **Invariants:** nothing here panics on any input; a result is always strictly after `now`
//! (a past or zero reset means "no reset", so callers never hot-loop) and never after
//! `now + ceiling`.

use std::time::{Duration, UNIX_EPOCH};

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};
use serde_json::Value;

use crate::clock::Timestamp;

/// Epoch values above this are milliseconds.
pub const EPOCH_MILLIS_THRESHOLD: f64 = 1e12;

/// Epoch values from this up (and at most [`EPOCH_MILLIS_THRESHOLD`]) are seconds; smaller
/// numbers are a delay in seconds from now.
pub const EPOCH_SECONDS_THRESHOLD: f64 = 1e9;

/// How deep the JSON walk looks for reset fields; error envelopes are shallow.
const MAX_JSON_DEPTH: usize = 8;

/// How many JSON nodes the walk visits at most, so a huge body costs bounded time.
const MAX_JSON_NODES: usize = 2_000;

/// How much of a message is searched for phrases.
const MAX_MESSAGE_BYTES: usize = 8 * 1024;

/// Where a reset time was read, for explanations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResetSource {
    /// A `Retry-After`-like header, by name.
    RetryHeader(String),
    /// A field of the JSON body, by name.
    BodyField(String),
    /// A rate-limit bucket header, by name.
    BucketHeader(String),
    /// A phrase in the provider's message.
    Message,
}

impl std::fmt::Display for ResetSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResetSource::RetryHeader(name) => write!(f, "header {name}"),
            ResetSource::BodyField(name) => write!(f, "body field {name}"),
            ResetSource::BucketHeader(name) => write!(f, "bucket header {name}"),
            ResetSource::Message => f.write_str("message text"),
        }
    }
}

/// A reset time and where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reset {
    /// When the limit lifts, clamped to the ceiling.
    pub at: Timestamp,
    /// The source that decided.
    pub source: ResetSource,
}

/// Returns when the provider says the limit lifts, by the tiers of the module docs, or `None`.
///
/// `body` is the parsed JSON error (any shape); `message` is the provider's human-readable
/// message or a plain-text body. The result is strictly after `now` and clamped to
/// `now + ceiling`.
pub fn reset_at(
    headers: &[(String, String)],
    body: Option<&Value>,
    message: Option<&str>,
    now: Timestamp,
    ceiling: Duration,
) -> Option<Timestamp> {
    find_reset(headers, body, message, now, ceiling).map(|reset| reset.at)
}

/// Like [`reset_at`], and says which source decided.
pub fn find_reset(
    headers: &[(String, String)],
    body: Option<&Value>,
    message: Option<&str>,
    now: Timestamp,
    ceiling: Duration,
) -> Option<Reset> {
    let retry_header = headers
        .iter()
        .filter(|(name, _)| is_retry_header(name))
        .filter_map(|(name, value)| {
            let at = from_header(name, value, now)?;
            Some((
                at,
                ResetSource::RetryHeader(name.trim().to_ascii_lowercase()),
            ))
        })
        .min_by_key(|(at, _)| *at);
    let found = retry_header
        .or_else(|| {
            let (at, key) = body.and_then(|value| earliest_json_field(value, now))?;
            Some((at, ResetSource::BodyField(key)))
        })
        .or_else(|| from_bucket_headers(headers, now))
        .or_else(|| Some((from_message(message?, now)?, ResetSource::Message)))?;
    let (at, source) = found;
    Some(Reset {
        at: clamp(at, now, ceiling)?,
        source,
    })
}

fn is_retry_header(name: &str) -> bool {
    let name = name.trim().to_ascii_lowercase();
    matches!(
        name.as_str(),
        "retry-after" | "x-retry-after" | "retry-after-ms" | "x-retry-after-ms"
    )
}

/// Reads the rate-limit bucket headers: the latest exhausted bucket, else the earliest bucket.
fn from_bucket_headers(
    headers: &[(String, String)],
    now: Timestamp,
) -> Option<(Timestamp, ResetSource)> {
    let lower: Vec<(String, &str)> = headers
        .iter()
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim()))
        .collect();
    let sibling = |name: &str| lower.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
    let mut exhausted: Option<(Timestamp, String)> = None;
    let mut earliest: Option<(Timestamp, String)> = None;
    for (name, value) in &lower {
        // Overage (extra usage) windows are not the window that rejected the request.
        if is_retry_header(name) || name.contains("overage") {
            continue;
        }
        let at = if name.ends_with("-reset-after-seconds") {
            parse_number(value).and_then(|secs| after(now, Duration::try_from_secs_f64(secs).ok()?))
        } else if name.ends_with("-reset-at")
            || name.contains("ratelimit-reset")
            || name.ends_with("-reset")
        {
            parse_reset_value(value, now)
        } else {
            None
        };
        let Some(at) = at.filter(|at| *at > now) else {
            continue;
        };
        let is_exhausted = [
            name.replace("reset-after-seconds", "used-percent"),
            name.replace("reset-at", "used-percent"),
        ]
        .iter()
        .filter(|n| *n != name)
        .filter_map(|n| sibling(n))
        .any(|v| parse_number(v).is_some_and(|p| p >= 100.0))
            || sibling(&name.replace("reset", "remaining")).is_some_and(|v| v == "0")
            || sibling(&name.replace("reset", "status"))
                .is_some_and(|v| v.eq_ignore_ascii_case("rejected"));
        if is_exhausted {
            if exhausted.as_ref().is_none_or(|(best, _)| at > *best) {
                exhausted = Some((at, name.clone()));
            }
        } else if earliest.as_ref().is_none_or(|(best, _)| at < *best) {
            earliest = Some((at, name.clone()));
        }
    }
    exhausted
        .or(earliest)
        .map(|(at, name)| (at, ResetSource::BucketHeader(name)))
}

/// Keeps a reset only when it is after `now`, and caps it at `now + ceiling`.
///
/// A ceiling under one millisecond keeps no reset at all: capping would give `now` itself,
/// which is no reset (and a hot loop for a caller that waits until it).
pub fn clamp(at: Timestamp, now: Timestamp, ceiling: Duration) -> Option<Timestamp> {
    let latest = now.plus(ceiling);
    (at > now && latest > now).then(|| at.min(latest))
}

/// Reads one response header; returns `None` for headers that say nothing about a reset.
///
/// Names are matched case-insensitively. A past instant or a zero delay is `None`.
pub fn from_header(name: &str, value: &str, now: Timestamp) -> Option<Timestamp> {
    let name = name.trim().to_ascii_lowercase();
    let value = value.trim();
    let at = match name.as_str() {
        "retry-after-ms" | "x-retry-after-ms" => {
            let ms = parse_number(value)?;
            after(now, Duration::try_from_secs_f64(ms / 1000.0).ok()?)?
        }
        "retry-after" | "x-retry-after" => match parse_number(value) {
            Some(secs) => after(now, Duration::try_from_secs_f64(secs).ok()?)?,
            None => parse_http_date(value)?,
        },
        _ if name.contains("ratelimit-reset") || name.ends_with("-reset") => {
            parse_reset_value(value, now)?
        }
        _ => return None,
    };
    (at > now).then_some(at)
}

/// Reads a reset value of unknown shape: RFC 3339, HTTP-date, a duration with units, or a
/// number (see [`number_to_instant`]).
pub fn parse_reset_value(value: &str, now: Timestamp) -> Option<Timestamp> {
    let value = value.trim();
    if let Some(number) = parse_number(value) {
        return number_to_instant(number, now);
    }
    if let Some(duration) = parse_duration(value) {
        return after(now, duration);
    }
    parse_rfc3339(value).or_else(|| parse_http_date(value))
}

/// Turns a bare number into an instant: above 10¹² epoch milliseconds, from 10⁹ epoch seconds,
/// otherwise seconds from `now`. Zero, negative and non-finite numbers are `None`.
pub fn number_to_instant(number: f64, now: Timestamp) -> Option<Timestamp> {
    if !number.is_finite() || number <= 0.0 {
        return None;
    }
    if number > EPOCH_MILLIS_THRESHOLD {
        millis_to_timestamp(number)
    } else if number >= EPOCH_SECONDS_THRESHOLD {
        millis_to_timestamp(number * 1000.0)
    } else {
        after(now, Duration::try_from_secs_f64(number).ok()?)
    }
}

/// Parses a duration: Go style (`6m0s`, `1.5s`, `174ms`, `1h2m3s`), protobuf style (`30s`)
/// and words (`4hr 5min`, `2 minutes and 30 seconds`). A bare number is not a duration.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let (duration, _) = parse_duration_prefix(text.trim())?;
    Some(duration)
}

/// Parses the longest duration at the start of `text`; returns it and the bytes consumed.
fn parse_duration_prefix(text: &str) -> Option<(Duration, usize)> {
    let bytes = text.as_bytes();
    let mut position = 0;
    let mut total_secs = 0.0_f64;
    let mut consumed = 0;
    let mut components = 0;
    loop {
        let mut cursor = position;
        while cursor < bytes.len() && matches!(bytes[cursor], b' ' | b',' | b'\t') {
            cursor += 1;
        }
        if components > 0 && text[cursor..].starts_with("and ") {
            cursor += 4;
        }
        let number_start = cursor;
        let mut seen_digit = false;
        let mut seen_dot = false;
        while cursor < bytes.len() {
            match bytes[cursor] {
                b'0'..=b'9' => seen_digit = true,
                b'.' if !seen_dot => seen_dot = true,
                _ => break,
            }
            cursor += 1;
        }
        if !seen_digit {
            break;
        }
        let Ok(number) = text[number_start..cursor]
            .trim_end_matches('.')
            .parse::<f64>()
        else {
            break;
        };
        while cursor < bytes.len() && bytes[cursor] == b' ' {
            cursor += 1;
        }
        let unit_start = cursor;
        while cursor < bytes.len() && bytes[cursor].is_ascii_alphabetic() {
            cursor += 1;
        }
        let Some(unit_secs) = unit_seconds(&text[unit_start..cursor]) else {
            break;
        };
        total_secs += number * unit_secs;
        components += 1;
        position = cursor;
        consumed = cursor;
    }
    if components == 0 || !total_secs.is_finite() {
        return None;
    }
    Some((Duration::try_from_secs_f64(total_secs).ok()?, consumed))
}

/// Returns how many seconds one unit is, for the unit spellings providers use.
fn unit_seconds(unit: &str) -> Option<f64> {
    let seconds = match unit.to_ascii_lowercase().as_str() {
        "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => 0.001,
        "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86_400.0,
        _ => return None,
    };
    Some(seconds)
}

/// Finds reset fields anywhere in a JSON body; returns the earliest.
pub fn from_json(value: &Value, now: Timestamp) -> Option<Timestamp> {
    earliest_json_field(value, now).map(|(at, _)| at)
}

/// The earliest reset field of a JSON body, with the field's name.
fn earliest_json_field(value: &Value, now: Timestamp) -> Option<(Timestamp, String)> {
    let mut budget = MAX_JSON_NODES;
    let mut earliest = None;
    walk_json(value, now, 0, &mut budget, &mut earliest);
    earliest
}

fn walk_json(
    value: &Value,
    now: Timestamp,
    depth: usize,
    budget: &mut usize,
    earliest: &mut Option<(Timestamp, String)>,
) {
    if depth > MAX_JSON_DEPTH || *budget == 0 {
        return;
    }
    *budget -= 1;
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if let Some(at) = json_field(key, child, now)
                    && earliest.as_ref().is_none_or(|(best, _)| at < *best)
                {
                    *earliest = Some((at, key.clone()));
                }
                walk_json(child, now, depth + 1, budget, earliest);
            }
        }
        Value::Array(items) => {
            for child in items {
                walk_json(child, now, depth + 1, budget, earliest);
            }
        }
        _ => {}
    }
}

/// Reads one JSON field by its normalised name (lower case, `_` and `-` removed).
fn json_field(key: &str, value: &Value, now: Timestamp) -> Option<Timestamp> {
    let key: String = key
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let at = match key.as_str() {
        // Delays: Google's protobuf durations ("30s") or seconds.
        "retrydelay" | "quotaresetdelay" | "retryafter" | "retryafterseconds"
        | "resetsinseconds" | "resetafterseconds" => match value {
            Value::Number(n) => after(now, Duration::try_from_secs_f64(n.as_f64()?).ok()?),
            Value::String(s) => parse_reset_value(s, now),
            _ => None,
        },
        "retryafterms" => after(
            now,
            Duration::try_from_secs_f64(value.as_f64()? / 1000.0).ok()?,
        ),
        // Instants: RFC 3339 or epoch numbers.
        "quotaresettimestamp"
        | "resetsat"
        | "resetat"
        | "retryuntil"
        | "resettime"
        | "xratelimitreset" => match value {
            Value::Number(n) => number_to_instant(n.as_f64()?, now),
            Value::String(s) => parse_reset_value(s, now),
            _ => None,
        },
        _ => None,
    }?;
    (at > now).then_some(at)
}

/// Anchors before a delay in a message.
const DELAY_ANCHORS: &[&str] = &[
    "try again in",
    "try again after",
    "retry in",
    "retry after",
    "retry-after",
    "resets in",
    "reset in",
    "reset after",
    "retrydelay",
    "quotaresetdelay",
    "please wait",
];

/// Anchors before an instant in a message.
const INSTANT_ANCHORS: &[&str] = &[
    "access on",
    "resets at",
    "reset at",
    "resets on",
    "reset on",
    "quotaresettimestamp",
    "until",
];

/// Finds reset phrases in a provider message; returns the earliest.
pub fn from_message(message: &str, now: Timestamp) -> Option<Timestamp> {
    let mut end = message.len().min(MAX_MESSAGE_BYTES);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    // Clients wrap long messages ("Please try\nagain in 1.98s", Groq's as printed by a Python
    // logger): any run of whitespace reads as one space.
    let lower = message[..end]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase();
    let mut earliest: Option<Timestamp> = None;
    let mut keep = |at: Timestamp| {
        if at > now && earliest.is_none_or(|best| at < best) {
            earliest = Some(at);
        }
    };
    for anchor in DELAY_ANCHORS {
        for (index, _) in lower.match_indices(anchor) {
            let rest = skip_separators(&lower[index + anchor.len()..]);
            let delay = match parse_duration_prefix(rest) {
                Some((duration, _)) => Some(duration),
                // "retry after 30": a bare number is seconds.
                None => leading_number(rest).and_then(|n| Duration::try_from_secs_f64(n).ok()),
            };
            if let Some(at) = delay.and_then(|d| after(now, d)) {
                keep(at);
            }
        }
    }
    for anchor in INSTANT_ANCHORS {
        for (index, _) in lower.match_indices(anchor) {
            let rest = skip_separators(&lower[index + anchor.len()..]);
            if let Some(at) = parse_instant_prefix(rest, now) {
                keep(at);
            }
        }
    }
    earliest
}

fn skip_separators(text: &str) -> &str {
    text.trim_start_matches([' ', ':', '=', '"', '\'', '\t', '\\'])
}

/// Reads a number at the start of `text`, if the number is followed by a non-alphanumeric.
fn leading_number(text: &str) -> Option<f64> {
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let after_number = text[end..].chars().next();
    if after_number.is_some_and(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    text[..end].trim_end_matches('.').parse().ok()
}

/// Reads an instant at the start of message text: RFC 3339, `YYYY-MM-DD at HH:MM [UTC]`,
/// `YYYY-MM-DD HH:MM[:SS]`, a bare date (midnight UTC) or an epoch number.
fn parse_instant_prefix(text: &str, now: Timestamp) -> Option<Timestamp> {
    let token_end = text
        .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | ')' | ';'))
        .unwrap_or(text.len());
    let token = text[..token_end].trim_end_matches('.');
    if let Some(at) = parse_rfc3339(token) {
        return Some(at);
    }
    if token.chars().all(|c| c.is_ascii_digit() || c == '.') && !token.is_empty() {
        return number_to_instant(parse_number(token)?, now);
    }
    let date = NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d").ok()?;
    let rest = text.get(10..).unwrap_or("").trim_start();
    let rest = rest.strip_prefix("at ").unwrap_or(rest).trim_start();
    let time_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == ':'))
        .unwrap_or(rest.len());
    let time_text = &rest[..time_end];
    let time = NaiveTime::parse_from_str(time_text, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(time_text, "%H:%M"))
        .unwrap_or(NaiveTime::MIN);
    Some(Timestamp(date.and_time(time).and_utc().timestamp_millis()))
}

/// Parses RFC 3339 (`2026-09-01T00:00:00Z`, offsets, fractions); a missing zone means UTC.
pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(Timestamp(time.timestamp_millis()));
    }
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    Some(Timestamp(naive.and_utc().timestamp_millis()))
}

/// Parses an HTTP-date (`Wed, 21 Oct 2026 07:28:00 GMT`).
pub fn parse_http_date(text: &str) -> Option<Timestamp> {
    let time = httpdate::parse_http_date(text.trim()).ok()?;
    let millis = time.duration_since(UNIX_EPOCH).ok()?.as_millis();
    Some(Timestamp(i64::try_from(millis).ok()?))
}

/// Parses a plain decimal number (`30`, `1.5`); nothing else.
fn parse_number(text: &str) -> Option<f64> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    text.parse::<f64>().ok().filter(|n| n.is_finite())
}

fn millis_to_timestamp(millis: f64) -> Option<Timestamp> {
    // Saturating float-to-int conversion; anything beyond i64 is clamped later anyway.
    (millis.is_finite() && millis > 0.0).then_some(Timestamp(millis as i64))
}

/// `now + delay`, or `None` for a zero delay.
fn after(now: Timestamp, delay: Duration) -> Option<Timestamp> {
    (!delay.is_zero()).then(|| now.plus(delay))
}

#[cfg(test)]
mod tests;
