//! Text output of `credpool admin`: tables and one-line summaries built from the same JSON
//! values `--json` prints.
//!
//! **Invariant:** only fields of the redacted views are shown (labels, fingerprints,
//! statuses, counters); nothing here can see a secret.

use credpool::PoolSnapshot;
use serde_json::Value;

use super::AdminCommand;
use crate::table::{self, table};

fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

/// An RFC 3339 time from epoch milliseconds.
fn time(millis: i64) -> String {
    credpool::Timestamp(millis).to_rfc3339()
}

/// The status table, from the snapshots' JSON (the typed views the pools answered).
pub fn status(snapshots: &Value) -> String {
    match serde_json::from_value::<Vec<PoolSnapshot>>(snapshots.clone()) {
        Ok(snapshots) => table::status(&snapshots),
        Err(error) => format!("cannot read the pools' answer: {error}\n"),
    }
}

fn entry_line(verb: &str, provider: &str, entry: &Value) -> String {
    format!(
        "{verb} {provider}/{} (id {}, fingerprint {}, status {}, position {})\n",
        str_of(entry, "label"),
        str_of(entry, "id"),
        str_of(entry, "fingerprint"),
        serde_json::from_value::<credpool::EntryView>(entry.clone()).map_or_else(
            |_| str_of(entry, "status").to_owned(),
            |view| table::status_cell(&view)
        ),
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
        AdminCommand::Backup { .. } => format!(
            "backup written to {} ({} bytes); it holds the stored secrets: keep it private\n",
            str_of(value, "file"),
            value.get("bytes").and_then(Value::as_u64).unwrap_or(0)
        ),
        AdminCommand::Restore { .. } => format!(
            "restored {} records into {}\n",
            value.get("records").and_then(Value::as_u64).unwrap_or(0),
            str_of(value, "data_dir")
        ),
        AdminCommand::Rekey { .. } => {
            let mut text = format!(
                "re-sealed {} entries and {} quarantined records: key {} → key {}\n",
                value.get("entries").and_then(Value::as_u64).unwrap_or(0),
                value
                    .get("quarantined")
                    .and_then(Value::as_u64)
                    .unwrap_or(0),
                str_of(value, "from"),
                str_of(value, "to"),
            );
            match value.get("replaced_key_file").and_then(Value::as_str) {
                Some(file) => text.push_str(&format!("{file} now holds the new key\n")),
                None => text.push_str(&format!(
                    "give the service the new key from now on ({}, or CREDPOOL_MASTER_KEY); the old key no longer opens the store\n",
                    str_of(value, "new_key_file")
                )),
            }
            text
        }
        AdminCommand::Import(_) => {
            match serde_json::from_value::<super::import::report::ImportReport>(value.clone()) {
                Ok(report) => super::import::report::text(&report),
                Err(error) => format!("cannot read the import's answer: {error}\n"),
            }
        }
        AdminCommand::Recover { .. } => {
            let list = |key: &str| -> Vec<String> {
                value
                    .get(key)
                    .and_then(Value::as_array)
                    .map(|items| {
                        items
                            .iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let accepted = list("accepted");
            if accepted.is_empty() {
                "the store is whole; nothing to accept\n".to_owned()
            } else {
                let mut text = String::from("accepted:\n");
                for line in accepted {
                    text.push_str(&format!("  {line}\n"));
                }
                for killed in list("killed") {
                    text.push_str(&format!(
                        "  {killed} is dead (store_rolled_back): sign in again\n"
                    ));
                }
                text
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

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
