//! What an import did (or, in a dry run, would do), row by row: the typed report that
//! `--json` prints as it is, and its text form (one table per provider).
//!
//! **Invariants:** a report holds labels, fingerprints, statuses and reasons — never a
//! secret; every row of the file appears exactly once, with one [`Action`]; a provider whose
//! report has a refused row has no imported row (all or nothing per provider).

use credpool_core::{CredentialKind, EntryId, Fingerprint, Status};
use serde::{Deserialize, Serialize};

use crate::table::table;

/// Why a row was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The pool key is not a provider credpool knows.
    UnknownProvider,
    /// The row is not an object, or a field has the wrong type.
    Malformed(String),
    /// The secret lives outside the file (an environment variable, another program's
    /// credentials file, a vault): the source is named.
    Borrowed(String),
    /// No secret to import: an empty key, or a grant with neither token.
    EmptySecret,
    /// `auth_type` is neither `api_key` nor `oauth`.
    UnknownAuthType(String),
    /// `last_status` is neither empty, `ok`, `exhausted` nor `dead`.
    UnknownStatus(String),
    /// An OAuth grant for a provider that takes API keys in credpool (no token endpoint).
    NotAnOAuthProvider,
    /// The label is empty, too long or holds control characters.
    BadLabel(String),
    /// Another row of the provider has the same label.
    DuplicateLabel,
    /// A token is longer than credpool accepts.
    SecretTooLong,
    /// `base_url` is not an http(s) URL.
    BadBaseUrl,
    /// The grant's refresh token is also held by another row or entry (named by label):
    /// two holders of one single-use token would replay it.
    SameRefreshToken(String),
    /// The pool holds an entry with this label and another secret.
    LabelTaken(Fingerprint),
    /// This data dir already sent the grant's refresh token; it is spent.
    RefreshTokenSpent,
    /// This data dir was used before (it has an admin token) but its store is new: it lost
    /// the record of which refresh tokens it spent.
    StoreLost,
}

impl Refusal {
    /// A stable snake_case code (the JSON `reason`).
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::UnknownProvider => "unknown_provider",
            Refusal::Malformed(_) => "malformed",
            Refusal::Borrowed(_) => "borrowed",
            Refusal::EmptySecret => "empty_secret",
            Refusal::UnknownAuthType(_) => "unknown_auth_type",
            Refusal::UnknownStatus(_) => "unknown_status",
            Refusal::NotAnOAuthProvider => "not_an_oauth_provider",
            Refusal::BadLabel(_) => "bad_label",
            Refusal::DuplicateLabel => "duplicate_label",
            Refusal::SecretTooLong => "secret_too_long",
            Refusal::BadBaseUrl => "bad_base_url",
            Refusal::SameRefreshToken(_) => "same_refresh_token",
            Refusal::LabelTaken(_) => "label_taken",
            Refusal::RefreshTokenSpent => "refresh_token_spent",
            Refusal::StoreLost => "store_lost",
        }
    }

    /// What the operator reads (the JSON `detail`): the cause and what to do.
    pub fn message(&self) -> String {
        match self {
            Refusal::UnknownProvider => {
                "credpool has no provider with this id; add it to the config (a `custom:` id, or base_url/token_url/hosts) and import again".to_owned()
            }
            Refusal::Malformed(problem) => problem.clone(),
            Refusal::Borrowed(source) if source == "claude_code" => {
                "borrowed from Claude Code, which keeps refreshing this grant itself; a second refresher of its single-use refresh token would get the grant revoked: leave it to Claude Code, or sign in for credpool and add the grant with `credpool admin add`".to_owned()
            }
            Refusal::Borrowed(source) => format!(
                "borrowed (source {source}): the secret is not in the file; configure it in credpool as an env or file entry (`api_key_env`, `api_key_file`, … in docs/CONFIG.md)"
            ),
            Refusal::EmptySecret => "no secret in the row".to_owned(),
            Refusal::UnknownAuthType(auth_type) => {
                format!("auth_type {auth_type:?} is neither api_key nor oauth")
            }
            Refusal::UnknownStatus(status) => {
                format!("last_status {status:?} is neither ok, exhausted nor dead")
            }
            Refusal::NotAnOAuthProvider => {
                "an OAuth grant for a provider that takes API keys in credpool: it could never be refreshed".to_owned()
            }
            Refusal::BadLabel(problem) => problem.clone(),
            Refusal::DuplicateLabel => {
                "another row of this provider has the same label (and no distinct id to tell them apart)".to_owned()
            }
            Refusal::SecretTooLong => format!(
                "a token is longer than {} bytes",
                credpool_server::api::MAX_SECRET_BYTES
            ),
            Refusal::BadBaseUrl => "base_url is not an http(s) URL".to_owned(),
            Refusal::SameRefreshToken(label) => format!(
                "the same refresh token is held by {label:?}; two holders of a single-use token would replay it"
            ),
            Refusal::LabelTaken(fingerprint) => format!(
                "the pool already holds an entry with this label and another secret ({fingerprint}); remove or rename it, or rename the row"
            ),
            Refusal::RefreshTokenSpent => {
                "this data dir already sent this refresh token (the grant was imported and refreshed, then removed): it is spent; sign in again".to_owned()
            }
            Refusal::StoreLost => {
                "this data dir was used before (it has an admin token) but its store is new: it lost its state, and credpool may have refreshed this grant already, which would make the file's refresh token spent; restore a backup (credpool admin restore), or sign in again".to_owned()
            }
        }
    }
}

/// What happened to a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Written to the store.
    Imported,
    /// Would be written (dry run).
    WouldImport,
    /// Already in the store: nothing to do.
    Skipped,
    /// Cannot be imported; `reason` says why.
    Refused,
    /// Could be imported, but another row of its provider was refused.
    HeldBack,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Imported => "imported",
            Action::WouldImport => "would_import",
            Action::Skipped => "skipped",
            Action::Refused => "refused",
            Action::HeldBack => "held_back",
        }
    }
}

/// One row of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowReport {
    /// Its 1-based position in its provider's list in the file.
    pub row: usize,
    /// Its id in the file.
    pub hermes_id: Option<String>,
    /// The label it has (or would have) in credpool.
    pub label: Option<String>,
    /// API key or OAuth grant, when the row could be read.
    pub kind: Option<CredentialKind>,
    /// The fingerprint of the secret credpool shows for it.
    pub fingerprint: Option<Fingerprint>,
    /// Its priority in credpool (lower is preferred).
    pub priority: Option<u32>,
    /// The status it has (or would have) in credpool.
    pub status: Option<Status>,
    /// What happened.
    pub action: Action,
    /// The credpool entry: written now, or found already there.
    pub entry: Option<EntryId>,
    /// A stable code for a refusal, or `already_imported` for a skipped row.
    pub reason: Option<String>,
    /// The explanation.
    pub detail: Option<String>,
}

/// One provider of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderReport {
    /// The pool key as the file spells it.
    pub provider: String,
    /// Its rows, in file order.
    pub rows: Vec<RowReport>,
}

/// Rows per action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Written now, or would be in a dry run.
    pub imported: usize,
    /// Already there.
    pub skipped: usize,
    /// Refused.
    pub refused: usize,
    /// Held back with a refused sibling.
    pub held_back: usize,
}

/// The whole import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    /// The system the file came from (`hermes`).
    pub from: String,
    /// The file read.
    pub file: String,
    /// Whether nothing was written.
    pub dry_run: bool,
    /// True when every row is in credpool now (or would be): none refused or held back.
    pub complete: bool,
    /// Rows per action.
    pub totals: Totals,
    /// Per provider, in the order of their ids.
    pub providers: Vec<ProviderReport>,
}

impl ImportReport {
    /// Builds the report, counting the rows.
    pub fn new(from: &str, file: String, dry_run: bool, providers: Vec<ProviderReport>) -> Self {
        let mut totals = Totals::default();
        for row in providers.iter().flat_map(|p| &p.rows) {
            match row.action {
                Action::Imported | Action::WouldImport => totals.imported += 1,
                Action::Skipped => totals.skipped += 1,
                Action::Refused => totals.refused += 1,
                Action::HeldBack => totals.held_back += 1,
            }
        }
        ImportReport {
            from: from.to_owned(),
            file,
            dry_run,
            complete: totals.refused == 0 && totals.held_back == 0,
            totals,
            providers,
        }
    }
}

fn status_text(status: &Status) -> String {
    match status {
        Status::Ok => "ok".to_owned(),
        Status::CoolingDown { until, cause } => {
            format!("cooling_down ({}) until {until}", cause.as_str())
        }
        Status::Dead { reason, .. } => format!("dead ({})", reason.as_str()),
    }
}

fn provider_heading(provider: &ProviderReport, dry_run: bool) -> String {
    let count = |action: Action| provider.rows.iter().filter(|r| r.action == action).count();
    let refused = count(Action::Refused);
    let written = count(Action::Imported) + count(Action::WouldImport);
    let skipped = count(Action::Skipped);
    if refused > 0 {
        return format!(
            "{}: nothing imported — {refused} row(s) refused, and a provider is imported whole or not at all",
            escape(&provider.provider)
        );
    }
    let verb = if dry_run { "would import" } else { "imported" };
    format!(
        "{}: {verb} {written}, {skipped} already there",
        escape(&provider.provider)
    )
}

/// The report as text: a table per provider, the reasons below it, totals, and what to do
/// next.
pub fn text(report: &ImportReport) -> String {
    let mut out = format!("import from {}: {}", report.from, report.file);
    if report.dry_run {
        out.push_str(" (dry run: nothing written)");
    }
    out.push('\n');
    let mut oauth_imported = false;
    let mut borrowed = false;
    for provider in &report.providers {
        out.push('\n');
        out.push_str(&provider_heading(provider, report.dry_run));
        out.push('\n');
        if provider.rows.is_empty() {
            continue;
        }
        let rows: Vec<Vec<String>> = provider
            .rows
            .iter()
            .map(|row| {
                vec![
                    row.row.to_string(),
                    row.label.as_deref().map_or_else(|| "-".to_owned(), escape),
                    row.kind
                        .map_or("-", |kind| match kind {
                            CredentialKind::ApiKey => "api_key",
                            CredentialKind::OAuth => "oauth",
                        })
                        .to_owned(),
                    row.fingerprint
                        .as_ref()
                        .map_or_else(|| "-".to_owned(), |f| f.as_str().to_owned()),
                    row.priority
                        .map_or_else(|| "-".to_owned(), |p| p.to_string()),
                    row.status
                        .as_ref()
                        .map_or_else(|| "-".to_owned(), status_text),
                    row.action.as_str().to_owned(),
                    row.reason.as_deref().map(escape).unwrap_or_default(),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "ROW",
                "LABEL",
                "KIND",
                "FINGERPRINT",
                "PRIORITY",
                "STATUS",
                "ACTION",
                "REASON",
            ],
            &rows,
        ));
        for row in &provider.rows {
            if let Some(detail) = &row.detail
                && row.action != Action::Skipped
            {
                out.push_str(&format!("  row {}: {}\n", row.row, escape(detail)));
            }
            oauth_imported |= matches!(row.action, Action::Imported | Action::WouldImport)
                && row.kind == Some(CredentialKind::OAuth);
            borrowed |= row.reason.as_deref() == Some("borrowed");
        }
    }
    let totals = report.totals;
    out.push_str(&format!(
        "\n{} {}, {} already there, {} refused, {} held back\n",
        if report.dry_run {
            "would import"
        } else {
            "imported"
        },
        totals.imported,
        totals.skipped,
        totals.refused,
        totals.held_back
    ));
    if oauth_imported {
        out.push_str("OAuth grants belong to credpool once imported: stop the old runtime from refreshing them (stop it, or remove those rows from its auth.json), or a refresh token used twice gets the grant revoked (docs/IMPORT.md)\n");
    }
    if borrowed {
        out.push_str("borrowed rows stay where their secret lives: configure them in credpool as env or file entries (docs/CONFIG.md)\n");
    }
    if !report.complete {
        out.push_str(
            "fix the refused rows and run the import again: rows already imported are skipped\n",
        );
    }
    out
}

/// Text from the file as one printable cell: control characters escaped (a label or pool
/// key could hold an escape sequence that rewrites the terminal).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn row(label: &str, action: Action, reason: Option<&str>) -> RowReport {
        RowReport {
            row: 1,
            hermes_id: None,
            label: Some(label.to_owned()),
            kind: Some(CredentialKind::ApiKey),
            fingerprint: Some(Fingerprint::of("k")),
            priority: Some(0),
            status: Some(Status::Ok),
            action,
            entry: None,
            reason: reason.map(str::to_owned),
            detail: reason.map(|_| "borrowed (source env:\u{1b}[2J)".to_owned()),
        }
    }

    #[test]
    fn the_text_has_a_table_per_provider_and_escapes_what_the_file_wrote() {
        let report = ImportReport::new(
            "hermes",
            "auth.json".to_owned(),
            false,
            vec![ProviderReport {
                provider: "openrouter".to_owned(),
                rows: vec![
                    row("team\u{1b}[31m", Action::HeldBack, None),
                    row("env", Action::Refused, Some("borrowed")),
                ],
            }],
        );
        assert!(!report.complete);
        assert_eq!(report.totals.held_back, 1);
        let text = text(&report);
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(text.contains("team\\u{1b}[31m"), "{text}");
        assert!(text.contains("openrouter: nothing imported"), "{text}");
        assert!(text.contains("ROW  LABEL"), "{text}");
        assert!(text.contains("as env or file entries"), "{text}");
        let json = serde_json::to_value(&report).unwrap();
        let back: ImportReport = serde_json::from_value(json).unwrap();
        assert_eq!(back, report, "the text is rendered from the JSON");
    }
}
