//! Text output of `credpool admin`: tables and one-line summaries built from the same JSON
//! values `--json` prints.
//!
//! **Invariant:** only fields of the redacted views are shown (labels, fingerprints,
//! statuses, counters); nothing here can see a secret.

use serde_json::Value;

use super::AdminCommand;

fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

/// `1h02m`, `4m59s`, `12s`.
fn duration(secs: u64) -> String {
    let (hours, minutes, seconds) = (secs / 3600, secs % 3600 / 60, secs % 60);
    if hours > 0 {
        format!("{hours}h{minutes:02}m")
    } else if minutes > 0 {
        format!("{minutes}m{seconds:02}s")
    } else {
        format!("{seconds}s")
    }
}

/// An RFC 3339 time from epoch milliseconds.
fn time(millis: i64) -> String {
    credpool::Timestamp(millis).to_rfc3339()
}

fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        let mut text = padded.join("  ").trim_end().to_owned();
        text.push('\n');
        text
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

fn status_cell(entry: &Value) -> String {
    let status = str_of(entry, "status");
    let mut cell = match status {
        "cooling_down" => format!("cooling_down ({})", str_of(entry, "cooldown_cause")),
        "dead" => format!("dead ({})", str_of(entry, "dead_reason")),
        other => other.to_owned(),
    };
    if entry.get("missing_secret").and_then(Value::as_bool) == Some(true) {
        cell.push_str(", no secret");
    }
    cell
}

/// The status table: one row per entry of every snapshot.
pub fn status(snapshots: &Value) -> String {
    let mut rows = Vec::new();
    let empty = Vec::new();
    for snapshot in snapshots.as_array().unwrap_or(&empty) {
        let provider = str_of(snapshot, "provider");
        for entry in snapshot
            .get("entries")
            .and_then(Value::as_array)
            .unwrap_or(&empty)
        {
            rows.push(vec![
                provider.to_owned(),
                str_of(entry, "label").to_owned(),
                str_of(entry, "fingerprint").to_owned(),
                status_cell(entry),
                entry
                    .get("cooldown_remaining_s")
                    .and_then(Value::as_u64)
                    .map_or_else(|| "-".to_owned(), duration),
                entry
                    .get("token_expires_at")
                    .and_then(Value::as_i64)
                    .map_or_else(|| "-".to_owned(), time),
                entry
                    .get("generation")
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
                    .to_string(),
                entry
                    .pointer("/usage/selections")
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
                    .to_string(),
            ]);
        }
    }
    if rows.is_empty() {
        return "no entries\n".to_owned();
    }
    table(
        &[
            "PROVIDER",
            "LABEL",
            "FINGERPRINT",
            "STATUS",
            "COOLDOWN",
            "TOKEN EXPIRES",
            "GEN",
            "USES",
        ],
        &rows,
    )
}

fn entry_line(verb: &str, provider: &str, entry: &Value) -> String {
    format!(
        "{verb} {provider}/{} (id {}, fingerprint {}, status {}, position {})\n",
        str_of(entry, "label"),
        str_of(entry, "id"),
        str_of(entry, "fingerprint"),
        status_cell(entry),
        entry.get("index").and_then(Value::as_u64).unwrap_or(0),
    )
}

fn stats(value: &Value) -> String {
    let empty = Vec::new();
    let mut rows = Vec::new();
    for pool in value
        .get("pools")
        .and_then(Value::as_array)
        .unwrap_or(&empty)
    {
        let number = |key: &str| {
            pool.get(key)
                .and_then(Value::as_u64)
                .unwrap_or(0)
                .to_string()
        };
        rows.push(vec![
            str_of(pool, "provider").to_owned(),
            number("selections"),
            number("exhausted"),
            number("refreshes_succeeded"),
            number("refreshes_failed"),
            number("rotations"),
            number("leases_held"),
        ]);
    }
    let mut out = table(
        &[
            "PROVIDER",
            "SELECTIONS",
            "EXHAUSTED",
            "REFRESHED",
            "REFRESH FAILED",
            "ROTATIONS",
            "LEASES",
        ],
        &rows,
    );
    if let Some(refresher) = value.get("refresher") {
        let number = |key: &str| refresher.get(key).and_then(Value::as_u64).unwrap_or(0);
        out.push_str(&format!(
            "refresher: {} exchanges ({} ok, {} transient, {} terminal), {} in flight, {} timers armed\n",
            number("exchanges"),
            number("succeeded"),
            number("failed_transient"),
            number("failed_terminal"),
            number("in_flight"),
            number("timers_armed"),
        ));
    }
    out
}

/// One event as a line: its name, then its fields as `key=value`.
pub fn event_line(event: &Value) -> String {
    let name = str_of(event, "event");
    let mut line = name.to_owned();
    if let Some(fields) = event.as_object() {
        for (key, value) in fields {
            if key == "event" {
                continue;
            }
            let text = match value {
                Value::String(text) => text.clone(),
                Value::Null => continue,
                other => other.to_string(),
            };
            let text = if key == "until" {
                value.as_i64().map_or(text, time)
            } else {
                text
            };
            line.push_str(&format!(" {key}={text}"));
        }
    }
    line
}

/// Renders a command's answer as text.
pub fn text(command: &AdminCommand, value: &Value) -> String {
    match command {
        AdminCommand::Status { .. } => status(value),
        AdminCommand::Providers => {
            let empty = Vec::new();
            let rows: Vec<Vec<String>> = value
                .as_array()
                .unwrap_or(&empty)
                .iter()
                .map(|summary| {
                    let number = |key: &str| {
                        summary
                            .get(key)
                            .and_then(Value::as_u64)
                            .unwrap_or(0)
                            .to_string()
                    };
                    vec![
                        str_of(summary, "provider").to_owned(),
                        number("entries"),
                        number("available"),
                        str_of(summary, "strategy").to_owned(),
                    ]
                })
                .collect();
            table(&["PROVIDER", "ENTRIES", "AVAILABLE", "STRATEGY"], &rows)
        }
        AdminCommand::Add(add) => entry_line("added", &add.provider, value),
        AdminCommand::Remove { provider, .. } => entry_line("removed", provider, value),
        AdminCommand::Reset { provider, .. } => entry_line("reset", provider, value),
        AdminCommand::Refresh { provider, .. } => entry_line("refresh", provider, value),
        AdminCommand::Move { provider, .. } => entry_line("moved", provider, value),
        AdminCommand::Strategy { .. } => format!(
            "{} now uses {}\n",
            str_of(value, "provider"),
            str_of(value, "strategy")
        ),
        AdminCommand::Stats { .. } => stats(value),
        AdminCommand::Events { .. } => format!("{}\n", event_line(value)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn durations_are_short() {
        for (secs, expected) in [
            (0, "0s"),
            (59, "59s"),
            (60, "1m00s"),
            (299, "4m59s"),
            (3720, "1h02m"),
        ] {
            assert_eq!(duration(secs), expected);
        }
    }

    #[test]
    fn the_status_table_has_one_row_per_entry() {
        let snapshots = serde_json::json!([{
            "provider": "openai",
            "entries": [
                {"label": "k1", "fingerprint": "sha256:ab12", "status": "cooling_down",
                 "cooldown_cause": "rate_limited", "cooldown_remaining_s": 299,
                 "token_expires_at": null, "generation": 3, "usage": {"selections": 42},
                 "missing_secret": false},
                {"label": "k2", "fingerprint": "sha256:cd34", "status": "dead",
                 "dead_reason": "invalid_grant", "generation": 1, "usage": {"selections": 0},
                 "token_expires_at": 1788000000000_i64, "missing_secret": true}
            ]
        }]);
        let text = status(&snapshots);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("PROVIDER  LABEL"), "{text}");
        assert!(lines[1].contains("cooling_down (rate_limited)") && lines[1].contains("4m59s"));
        assert!(lines[1].ends_with("3    42"), "{text}");
        assert!(
            lines[2].contains("dead (invalid_grant), no secret"),
            "{text}"
        );
        assert!(lines[2].contains("2026-08-29T10:40:00Z"), "{text}");
        assert_eq!(status(&serde_json::json!([])), "no entries\n");
    }

    #[test]
    fn events_are_one_line_each() {
        let event = serde_json::json!({"event": "cooled_down", "provider": "openai",
            "entry": "0000000000aa", "until": 1788000000000_i64, "cause": "rate_limited", "model": null});
        assert_eq!(
            event_line(&event),
            "cooled_down cause=rate_limited entry=0000000000aa provider=openai until=2026-08-29T10:40:00Z"
        );
    }
}
