//! The entry table, over the pools' typed views: what `credpool demo` prints at its end and
//! what `credpool admin status` prints (from a running service's JSON or a stopped one's
//! store alike).
//!
//! **Invariant:** only fields of the redacted views are shown (ids, labels, fingerprints,
//! statuses, counters); nothing here can see a secret.

use credpool::{EntryView, PoolSnapshot, StatusKind, Timestamp};

/// `1h02m`, `4m59s`, `12s`.
pub fn duration(secs: u64) -> String {
    let (hours, minutes, seconds) = (secs / 3600, secs % 3600 / 60, secs % 60);
    if hours > 0 {
        format!("{hours}h{minutes:02}m")
    } else if minutes > 0 {
        format!("{minutes}m{seconds:02}s")
    } else {
        format!("{seconds}s")
    }
}

/// Lays out rows under headers, columns two spaces apart, trailing blanks trimmed.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
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

/// An entry's status with its cause: `cooling_down (rate_limited)`, `dead (invalid_grant)`,
/// `ok, no secret`.
pub fn status_cell(entry: &EntryView) -> String {
    let mut cell = match entry.status {
        StatusKind::CoolingDown => format!(
            "cooling_down ({})",
            entry.cooldown_cause.as_deref().unwrap_or("")
        ),
        StatusKind::Dead => format!("dead ({})", entry.dead_reason.as_deref().unwrap_or("")),
        StatusKind::Ok => "ok".to_owned(),
    };
    if entry.missing_secret {
        cell.push_str(", no secret");
    }
    cell
}

/// The status table: one row per entry of every snapshot, or `no entries`.
pub fn status(snapshots: &[PoolSnapshot]) -> String {
    let rows: Vec<Vec<String>> = snapshots
        .iter()
        .flat_map(|snapshot| {
            snapshot.entries.iter().map(|entry| {
                vec![
                    snapshot.provider.to_string(),
                    entry.id.to_string(),
                    entry.label.clone(),
                    entry.fingerprint.to_string(),
                    status_cell(entry),
                    entry
                        .cooldown_remaining_s
                        .map_or_else(|| "-".to_owned(), duration),
                    entry
                        .token_expires_at
                        .map_or_else(|| "-".to_owned(), Timestamp::to_rfc3339),
                    entry.generation.to_string(),
                    entry.usage.selections.to_string(),
                ]
            })
        })
        .collect();
    if rows.is_empty() {
        return "no entries\n".to_owned();
    }
    table(
        &[
            "PROVIDER",
            "ID",
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
        let snapshots: Vec<PoolSnapshot> = serde_json::from_value(serde_json::json!([{
            "provider": "openai",
            "strategy": "fill_first",
            "quarantined": [],
            "entries": [
                {"index": 1, "id": "0000000000aa", "label": "k1", "kind": "api_key",
                 "fingerprint": "sha256:ab12", "source": "manual", "priority": 0,
                 "status": "cooling_down", "cooldown_cause": "rate_limited",
                 "cooldown_remaining_s": 299, "dead_reason": null, "model_cooldowns": {},
                 "token_expires_at": null, "generation": 3,
                 "usage": {"selections": 42, "successes": 0, "failures": 0, "refreshes": 0,
                           "last_used_at": null},
                 "leases": 0, "last_error": null, "base_url": null, "missing_secret": false},
                {"index": 2, "id": "0000000000bb", "label": "k2", "kind": "oauth",
                 "fingerprint": "sha256:cd34", "source": "oauth", "priority": 1,
                 "status": "dead", "cooldown_cause": null, "cooldown_remaining_s": null,
                 "dead_reason": "invalid_grant", "model_cooldowns": {},
                 "token_expires_at": 1788000000000_i64, "generation": 1,
                 "usage": {"selections": 0, "successes": 0, "failures": 0, "refreshes": 0,
                           "last_used_at": null},
                 "leases": 0, "last_error": null, "base_url": null, "missing_secret": true}
            ]
        }]))
        .unwrap();
        let text = status(&snapshots);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[0].starts_with("PROVIDER  ID            LABEL"),
            "{text}"
        );
        assert!(lines[1].contains("0000000000aa") && lines[1].contains("4m59s"));
        assert!(lines[1].contains("cooling_down (rate_limited)"), "{text}");
        assert!(lines[1].ends_with("3    42"), "{text}");
        assert!(
            lines[2].contains("dead (invalid_grant), no secret"),
            "{text}"
        );
        assert!(lines[2].contains("2026-08-29T10:40:00Z"), "{text}");
        assert_eq!(status(&[]), "no entries\n");
    }
}
