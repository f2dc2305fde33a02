//! Reading a Hermes `auth.json` credential pool into credpool entries: a pure mapping, no I/O
//! and no clock (the caller passes `now`).
//!
//! The file is one JSON object. Its `credential_pool` member maps each pool key (a provider
//! id such as `openrouter`, `xai-oauth` or `custom:<name>`) to a list of rows, one per
//! credential, in no particular order: the row's `priority` (ascending) is the order. A row
//! names its secret in `access_token` (the API key itself for `auth_type: api_key`; the bearer
//! token for `auth_type: oauth`, with `refresh_token` and an expiry in `expires_at_ms` or an ISO
//! `expires_at`), says where that secret came from in `source`, and carries its health in
//! `last_status` (`ok` or empty, `exhausted`, `dead`) with `last_status_at`,
//! `last_error_code`, `last_error_reason`, `last_error_reset_at` and `failure_reason`, plus
//! `label`, `id`, `base_url`, `request_count` and optional `model_cooldowns`. Other members of
//! the file (`providers`, `active_provider`, `suppressed_sources`) are not read.
//!
//! Only rows whose secret the file itself holds are imported: a `manual` source (or
//! `manual:…`), or one of the sign-ins Hermes owns (`device_code` for nous, openai-codex and
//! xai-oauth; `hermes_pkce` for anthropic; `oauth` for minimax-oauth). Every other source
//! (environment variables, Claude Code's credentials, `gh` and other tools, config entries,
//! vault references) is borrowed: Hermes strips its secret before writing the file, and the
//! program it belongs to keeps rotating it.
//!
//! **Invariants:**
//! - Nothing here reads a file, the clock or the network, and nothing returns a secret in a
//!   [`Refusal`] or a label: secrets go only into the [`Entry`] of a [`Candidate`].
//! - Every row of the file yields exactly one [`Row`], in file order.
//! - A cooldown is never longer than credpool's own ceiling for provider reset times, and a
//!   cooldown that has already ended is imported as `ok`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::bail;
use credpool_core::cooldown::CooldownConfig;
use credpool_core::reset::parse_rfc3339;
use credpool_core::{
    ClientMetadata, CooldownCause, DeadReason, Entry, EntryId, EntryKind, LastError, OAuthTokens,
    ProviderId, ProviderRegistry, ProviderSpec, Secret, SecretSource, Status, Timestamp,
};
use credpool_pool_actor::PoolError;
use credpool_pool_actor::admin::check_label;
use serde_json::{Map, Value};

use super::report::Refusal;

/// The `version` of `auth.json` this reader knows.
pub const SUPPORTED_VERSION: u64 = 1;

/// The dead reason of a dead row whose own reason is missing or unusable.
pub const IMPORTED_DEAD: &str = "imported_dead";

/// How long Hermes benches a row after a 401 when the provider gave no reset time.
const HERMES_TTL_401: Duration = Duration::from_secs(300);

/// How long Hermes benches a row after any other failure without a reset time (the longest
/// of its rules; its 60 s sole-credential shortcut is not applied).
const HERMES_TTL_DEFAULT: Duration = Duration::from_secs(3600);

/// Above this, a number is epoch milliseconds rather than seconds (Hermes' own rule).
const EPOCH_MILLIS_ABOVE: f64 = 1e12;

/// A row that maps to a credpool entry.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The entry to store. Its id is 0 (no stored entry has that id) and its priority 0
    /// until the plan gives the real ones.
    pub entry: Entry,
    /// Hermes' priority: the row's place among its provider's rows (ascending).
    pub order: i64,
}

/// One row of the file, read.
#[derive(Debug, Clone)]
pub struct Row {
    /// 1-based position in its provider's list.
    pub position: usize,
    /// The row's `id`.
    pub hermes_id: Option<String>,
    /// The label it gets in credpool, when the row has one that can be shown.
    pub label: Option<String>,
    /// The entry, or why there is none.
    pub mapped: Result<Candidate, Refusal>,
}

/// One pool key of the file with its rows.
#[derive(Debug, Clone)]
pub struct ProviderRows {
    /// The key as the file spells it.
    pub name: String,
    /// The credpool provider, when the registry knows it.
    pub provider: Option<ProviderId>,
    /// Every row, in file order.
    pub rows: Vec<Row>,
}

/// Reads the `credential_pool` of a parsed `auth.json`.
///
/// # Errors
/// The document is not an `auth.json` this reader knows: not an object, another `version`,
/// no `credential_pool` object, or a pool that is not a list. Row problems are not errors:
/// they are [`Refusal`]s of their rows.
pub fn read_pool(
    document: &Value,
    registry: &ProviderRegistry,
    now: Timestamp,
) -> anyhow::Result<Vec<ProviderRows>> {
    let Some(document) = document.as_object() else {
        bail!("the file is not a JSON object");
    };
    match document.get("version") {
        None => {}
        Some(version) if version.as_u64() == Some(SUPPORTED_VERSION) => {}
        Some(version) => bail!(
            "auth.json version {version} is not supported (this import reads version {SUPPORTED_VERSION})"
        ),
    }
    let Some(pool) = document.get("credential_pool").and_then(Value::as_object) else {
        bail!("the file has no credential_pool object: nothing to import");
    };
    let mut providers = Vec::new();
    for (name, rows) in pool {
        let Some(rows) = rows.as_array() else {
            bail!("credential_pool.{name} is not a list of rows");
        };
        providers.push(read_provider(name, rows, registry, now));
    }
    Ok(providers)
}

/// Reads one pool key's rows.
pub fn read_provider(
    name: &str,
    rows: &[Value],
    registry: &ProviderRegistry,
    now: Timestamp,
) -> ProviderRows {
    let id = ProviderId::new(name);
    let spec = registry.get(&id);
    let labels = labels(rows);
    let rows = rows
        .iter()
        .zip(labels)
        .enumerate()
        .map(|(at, (row, label))| Row {
            position: at + 1,
            hermes_id: text(row, "id").ok().flatten().map(str::to_owned),
            label: label.clone(),
            mapped: match (&spec, label) {
                (None, _) => Err(Refusal::UnknownProvider),
                (Some(spec), label) => map_row(spec, row, label, now),
            },
        })
        .collect();
    ProviderRows {
        name: name.to_owned(),
        provider: spec.map(|spec| spec.id),
        rows,
    }
}

/// A row's label as Hermes reads it: `label`, else `source`, else `manual`.
fn raw_label(row: &Value) -> Option<String> {
    let non_empty = |key| {
        text(row, key)
            .ok()
            .flatten()
            .map(str::trim)
            .filter(|t| !t.is_empty())
    };
    row.is_object().then(|| {
        non_empty("label")
            .or_else(|| non_empty("source"))
            .unwrap_or("manual")
            .to_owned()
    })
}

/// The labels the rows get: Hermes labels need not be unique (they default to the source),
/// credpool's must be, so every row whose label is shared (case-insensitively) gets its
/// Hermes id added, `label [id]` — the same on every run, whatever the file order.
fn labels(rows: &[Value]) -> Vec<Option<String>> {
    let raw: Vec<Option<String>> = rows.iter().map(raw_label).collect();
    let mut uses: HashMap<String, usize> = HashMap::new();
    for label in raw.iter().flatten() {
        *uses.entry(label.to_ascii_lowercase()).or_default() += 1;
    }
    raw.into_iter()
        .zip(rows)
        .map(|(label, row)| {
            let label = label?;
            let shared = uses
                .get(&label.to_ascii_lowercase())
                .is_some_and(|n| *n > 1);
            let id = text(row, "id").ok().flatten().map(str::trim);
            Some(match id.filter(|id| shared && !id.is_empty()) {
                Some(id) => format!("{label} [{id}]"),
                None => label,
            })
        })
        .collect()
}

/// A string field: `Ok(None)` when absent or null, an error when it is another type.
fn text<'a>(row: &'a Value, key: &str) -> Result<Option<&'a str>, Refusal> {
    match row.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(Refusal::Malformed(format!("{key} is not a string"))),
    }
}

/// An integer field: `Ok(None)` when absent or null.
fn integer(row: &Value, key: &str) -> Result<Option<i64>, Refusal> {
    match row.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_i64()
            .map(Some)
            .ok_or_else(|| Refusal::Malformed(format!("{key} is not an integer"))),
    }
}

/// Whether Hermes owns the secret of a row from `source` in pool `provider` (it writes it to
/// the file); every other source is borrowed and its secret is not in the file.
pub fn is_owned(provider: &str, source: &str) -> bool {
    source == "manual"
        || source.starts_with("manual:")
        || matches!(
            (provider, source),
            ("anthropic", "hermes_pkce")
                | ("minimax-oauth", "oauth")
                | ("nous" | "openai-codex" | "xai-oauth", "device_code")
        )
}

/// An absolute time in the forms Hermes writes: epoch seconds (possibly fractional), epoch
/// milliseconds (numbers above 10¹²), either as a numeric string, or ISO 8601. Zero, negative
/// and unreadable values are `None`.
pub fn absolute_time(value: &Value) -> Option<Timestamp> {
    let from_number = |number: f64| {
        if !number.is_finite() || number <= 0.0 {
            return None;
        }
        let millis = if number > EPOCH_MILLIS_ABOVE {
            number
        } else {
            number * 1000.0
        };
        // Far past any real deadline, and past what a Timestamp holds.
        (millis < 1e17).then_some(Timestamp(millis as i64))
    };
    match value {
        Value::Number(number) => from_number(number.as_f64()?),
        Value::String(text) => {
            let text = text.trim();
            match text.parse::<f64>() {
                Ok(number) => from_number(number),
                Err(_) => parse_rfc3339(text),
            }
        }
        _ => None,
    }
}

/// The cooldown cause of an exhausted row: the persisted classifier verdict first (so a
/// billing bench stays billing), then the HTTP status.
pub fn cooldown_cause(code: Option<i64>, failure_reason: Option<&str>) -> CooldownCause {
    match (failure_reason, code) {
        (Some("billing" | "billing_unverified"), _) | (_, Some(402)) => CooldownCause::Billing,
        (Some("rate_limit" | "rate_limited"), _) | (_, Some(429)) => CooldownCause::RateLimited,
        (Some("auth"), _) | (_, Some(401 | 403)) => CooldownCause::Auth,
        _ => CooldownCause::Other,
    }
}

/// A provider's reason code worth keeping as a dead reason: short, one word of
/// `[A-Za-z0-9_.:-]` (anything else may be a message with details in it).
fn reason_code(reason: Option<&str>) -> Option<String> {
    let reason = reason?.trim();
    let fits = (1..=64).contains(&reason.len())
        && reason
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
    fits.then(|| reason.to_owned())
}

/// The status a row has in credpool at `now`, with the failure that caused it.
pub fn status_of(row: &Value, now: Timestamp) -> Result<(Status, Option<LastError>), Refusal> {
    let code = integer(row, "last_error_code")?;
    let reason = text(row, "last_error_reason")?;
    let status_at = row.get("last_status_at").and_then(absolute_time);
    // The provider's message is left behind: it may hold details (an account, a location)
    // that credpool would have masked.
    let last_error = |at: Timestamp| LastError {
        kind: "imported".to_owned(),
        status: code.and_then(|code| u16::try_from(code).ok()),
        reason: reason_code(reason),
        message: None,
        at,
    };
    match text(row, "last_status")? {
        None | Some("" | "ok") => Ok((Status::Ok, None)),
        Some("dead") => {
            let since = status_at.unwrap_or(now);
            let reason = reason_code(reason).unwrap_or_else(|| IMPORTED_DEAD.to_owned());
            let status = Status::Dead {
                reason: DeadReason::new(reason),
                since,
            };
            Ok((status, Some(last_error(since))))
        }
        Some("exhausted") => {
            let reset_at = row.get("last_error_reset_at").and_then(absolute_time);
            let ttl = if code == Some(401) {
                HERMES_TTL_401
            } else {
                HERMES_TTL_DEFAULT
            };
            let until = reset_at.or_else(|| status_at.map(|at| at.plus(ttl)));
            let ceiling = CooldownConfig::default().reset_ceiling;
            match until.and_then(|until| credpool_core::reset::clamp(until, now, ceiling)) {
                Some(until) => {
                    let cause = cooldown_cause(code, text(row, "failure_reason")?);
                    let status = Status::CoolingDown { until, cause };
                    Ok((status, Some(last_error(status_at.unwrap_or(now)))))
                }
                None => Ok((Status::Ok, None)),
            }
        }
        Some(other) => Err(Refusal::UnknownStatus(other.chars().take(32).collect())),
    }
}

/// A secret field, checked against credpool's size limit.
fn secret(row: &Value, key: &str) -> Result<Secret, Refusal> {
    let value = text(row, key)?.unwrap_or("");
    if value.len() > credpool_server::api::MAX_SECRET_BYTES {
        return Err(Refusal::SecretTooLong);
    }
    Ok(Secret::new(value))
}

/// `base_url` as credpool's config accepts it: an http(s) URL with a host, no trailing `/`.
fn base_url(row: &Value, spec: &ProviderSpec) -> Result<Option<String>, Refusal> {
    let Some(url) = text(row, "base_url")?
        .map(str::trim)
        .filter(|u| !u.is_empty())
    else {
        return Ok(spec.base_url.clone());
    };
    let parsed = reqwest::Url::parse(url).map_err(|_| Refusal::BadBaseUrl)?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(Refusal::BadBaseUrl);
    }
    Ok(Some(url.trim_end_matches('/').to_owned()))
}

/// Per-model benches still running at `now`, capped like any cooldown.
fn model_cooldowns(row: &Value, now: Timestamp) -> Result<BTreeMap<String, Timestamp>, Refusal> {
    let empty = Map::new();
    let models = match row.get("model_cooldowns") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(models)) => models,
        Some(_) => {
            return Err(Refusal::Malformed(
                "model_cooldowns is not an object".into(),
            ));
        }
    };
    let ceiling = CooldownConfig::default().reset_ceiling;
    Ok(models
        .iter()
        .filter_map(|(model, until)| {
            let until = credpool_core::reset::clamp(absolute_time(until)?, now, ceiling)?;
            Some((model.clone(), until))
        })
        .collect())
}

/// The credential of a row, by `auth_type`.
fn kind_of(row: &Value, spec: &ProviderSpec) -> Result<EntryKind, Refusal> {
    let access = secret(row, "access_token")?;
    match text(row, "auth_type")?.unwrap_or("api_key") {
        "api_key" if access.is_empty() => Err(Refusal::EmptySecret),
        "api_key" => Ok(EntryKind::ApiKey { key: access }),
        "oauth" => {
            let refresh = Some(secret(row, "refresh_token")?).filter(|r| !r.is_empty());
            if access.is_empty() && refresh.is_none() {
                return Err(Refusal::EmptySecret);
            }
            if !spec.is_oauth() {
                return Err(Refusal::NotAnOAuthProvider);
            }
            let expires_at = row
                .get("expires_at_ms")
                .and_then(absolute_time)
                .or_else(|| row.get("expires_at").and_then(absolute_time));
            let client = ClientMetadata {
                client_id: text(row, "client_id")?.map(str::to_owned),
                token_endpoint: None,
                scope: text(row, "scope")?.map(str::to_owned),
                obtained_at: None,
            };
            Ok(EntryKind::OAuth(OAuthTokens {
                access,
                refresh,
                expires_at,
                client,
            }))
        }
        other => Err(Refusal::UnknownAuthType(other.chars().take(32).collect())),
    }
}

/// Maps one row of a known provider.
fn map_row(
    spec: &ProviderSpec,
    row: &Value,
    label: Option<String>,
    now: Timestamp,
) -> Result<Candidate, Refusal> {
    let Some(label) = label else {
        return Err(Refusal::Malformed("the row is not an object".to_owned()));
    };
    let source = text(row, "source")?.unwrap_or("manual").trim();
    if !is_owned(spec.id.as_str(), source) {
        return Err(Refusal::Borrowed(source.chars().take(64).collect()));
    }
    let label = check_label(&label)
        .map_err(|error| {
            Refusal::BadLabel(match error {
                PoolError::Invalid(problem) => problem,
                other => other.to_string(),
            })
        })?
        .to_owned();
    let kind = kind_of(row, spec)?;
    let source = match kind {
        EntryKind::ApiKey { .. } => SecretSource::Manual,
        EntryKind::OAuth(_) => SecretSource::OAuthGrant,
    };
    let (status, last_error) = status_of(row, now)?;
    let selections = match integer(row, "request_count")? {
        None => 0,
        Some(count) => u64::try_from(count)
            .map_err(|_| Refusal::Malformed("request_count is negative".to_owned()))?,
    };
    let mut entry = Entry::new(EntryId(0), label, kind, source);
    entry.base_url = base_url(row, spec)?;
    entry.status = status;
    entry.last_error = last_error;
    entry.model_cooldowns = model_cooldowns(row, now)?;
    entry.usage.selections = selections;
    entry.last_refresh_at = row.get("last_refresh").and_then(absolute_time);
    Ok(Candidate {
        entry,
        order: integer(row, "priority")?.unwrap_or(0),
    })
}

#[cfg(test)]
mod tests;
