//! Deciding, per provider, what an import writes: the rows read from the file against what
//! the store already holds. Pure: the caller supplies the held entries, whether a refresh
//! token was spent, and the random bits for new entry ids.
//!
//! A row is skipped when the pool holds an entry with its label (case-insensitive) and the
//! same secret — or, for a grant, when this data dir has since spent the row's refresh token
//! (credpool refreshed the imported grant: the row in the file is stale). A label held with
//! another secret is a conflict. New rows get priorities after the pool's existing entries,
//! in Hermes' order (its `priority`, then file order), numbered without gaps.
//!
//! **Invariants:**
//! - All or nothing per provider: if any row of a provider is refused, the plan writes none
//!   of its rows, and the rows that could have been written are reported as held back.
//! - No two entries of one provider end up sharing a label, and no refresh token ends up in
//!   two entries, or in one entry after this data dir spent it.
//! - New ids are non-zero and unlike any held or planned id.

use std::collections::HashSet;

use credpool_core::{Entry, EntryId, Fingerprint, ProviderId};

use super::hermes::{Candidate, ProviderRows, Row};
use super::report::{Action, ProviderReport, Refusal, RowReport};

/// What an import needs to know of an entry the store holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// Its id.
    pub id: EntryId,
    /// Its label.
    pub label: String,
    /// The fingerprint of its request secret (a borrowed entry's stored fingerprint).
    pub fingerprint: Fingerprint,
    /// The fingerprint of its refresh token, for a grant that has one.
    pub refresh_fingerprint: Option<Fingerprint>,
    /// Its priority.
    pub priority: u32,
}

impl Held {
    /// Describes a stored entry; `borrowed` is the fingerprint the store kept for an entry
    /// whose secret it does not hold.
    pub fn of(entry: &Entry, borrowed: Option<&Fingerprint>) -> Held {
        let fingerprint = match borrowed {
            Some(fingerprint) if entry.request_secret().is_empty() => fingerprint.clone(),
            _ => entry.fingerprint(),
        };
        Held {
            id: entry.id,
            label: entry.label.clone(),
            fingerprint,
            refresh_fingerprint: refresh_fingerprint(entry),
            priority: entry.priority,
        }
    }
}

fn refresh_fingerprint(entry: &Entry) -> Option<Fingerprint> {
    entry
        .oauth()
        .and_then(|tokens| tokens.refresh.as_ref())
        .filter(|refresh| !refresh.is_empty())
        .map(|refresh| refresh.fingerprint())
}

/// What to write for one provider, and the report of its rows.
#[derive(Debug)]
pub struct ProviderPlan {
    /// The provider, when credpool knows it.
    pub provider: Option<ProviderId>,
    /// The entries to write in one batch (empty when nothing is to be written).
    pub writes: Vec<Entry>,
    /// Every row, in file order.
    pub report: ProviderReport,
}

/// A row's decision before the all-or-nothing rule is applied.
enum Decision {
    Write(Box<Entry>),
    Skip(EntryId, u32, &'static str),
    Refuse(Refusal),
}

/// The inputs from the store.
pub struct Store<'a> {
    /// The provider's entries.
    pub held: &'a [Held],
    /// Whether this data dir already sent a refresh token with this fingerprint.
    pub spent: &'a dyn Fn(&Fingerprint) -> bool,
    /// The data dir was used before but its store is new: no grant's refresh token can be
    /// trusted unspent.
    pub lost: bool,
}

/// Plans one provider. `random` gives the bits of new entry ids; `dry_run` only changes the
/// action reported for rows that would be written.
pub fn plan_provider(
    rows: ProviderRows,
    store: &Store<'_>,
    dry_run: bool,
    random: &mut dyn FnMut() -> u64,
) -> ProviderPlan {
    let mut taken: HashSet<EntryId> = store.held.iter().map(|held| held.id).collect();
    let mut new_id = || loop {
        let id = EntryId::from_random(random());
        if id.0 != 0 && taken.insert(id) {
            return id;
        }
    };
    let mut labels_seen: HashSet<String> = HashSet::new();
    let mut refresh_seen: Vec<(Fingerprint, String)> = Vec::new();
    let mut decided = Vec::with_capacity(rows.rows.len());
    for row in rows.rows {
        let decision = match &row.mapped {
            Err(refusal) => Decision::Refuse(refusal.clone()),
            Ok(candidate) => decide(candidate, store, &mut labels_seen, &mut refresh_seen),
        };
        decided.push((row, decision));
    }
    // New rows go after the pool's entries, in Hermes' order.
    let first_free = store
        .held
        .iter()
        .map(|held| held.priority.saturating_add(1))
        .max()
        .unwrap_or(0);
    let mut order: Vec<usize> = (0..decided.len())
        .filter(|&i| matches!(decided[i].1, Decision::Write(_)))
        .collect();
    order.sort_by_key(|&i| (candidate_order(&decided[i].0), i));
    for (rank, i) in order.into_iter().enumerate() {
        if let Decision::Write(entry) = &mut decided[i].1 {
            entry.priority = first_free.saturating_add(u32::try_from(rank).unwrap_or(u32::MAX));
            entry.id = new_id();
        }
    }
    let whole = !decided
        .iter()
        .any(|(_, decision)| matches!(decision, Decision::Refuse(_)));
    let mut writes = Vec::new();
    let mut reports = Vec::with_capacity(decided.len());
    for (row, decision) in decided {
        let mut report = row_report(&row);
        match decision {
            Decision::Write(entry) => {
                report.priority = Some(entry.priority);
                if !whole {
                    report.action = Action::HeldBack;
                    report.detail = Some(
                        "another row of this provider was refused, so none of its rows is imported"
                            .to_owned(),
                    );
                } else if dry_run {
                    report.action = Action::WouldImport;
                } else {
                    report.action = Action::Imported;
                    report.entry = Some(entry.id);
                    writes.push(*entry);
                }
            }
            Decision::Skip(id, priority, detail) => {
                report.action = Action::Skipped;
                report.entry = Some(id);
                report.priority = Some(priority);
                report.reason = Some("already_imported".to_owned());
                report.detail = Some(detail.to_owned());
            }
            Decision::Refuse(refusal) => {
                report.action = Action::Refused;
                report.reason = Some(refusal.code().to_owned());
                report.detail = Some(refusal.message());
            }
        }
        reports.push(report);
    }
    ProviderPlan {
        provider: rows.provider,
        writes,
        report: ProviderReport {
            provider: rows.name,
            rows: reports,
        },
    }
}

fn candidate_order(row: &Row) -> i64 {
    row.mapped.as_ref().map_or(0, |candidate| candidate.order)
}

/// Decides one mappable row against the store and the rows before it.
fn decide(
    candidate: &Candidate,
    store: &Store<'_>,
    labels_seen: &mut HashSet<String>,
    refresh_seen: &mut Vec<(Fingerprint, String)>,
) -> Decision {
    let entry = &candidate.entry;
    let fingerprint = entry.fingerprint();
    let refresh = refresh_fingerprint(entry);
    if !labels_seen.insert(entry.label.to_ascii_lowercase()) {
        return Decision::Refuse(Refusal::DuplicateLabel);
    }
    if let Some(held) = store
        .held
        .iter()
        .find(|held| held.label.eq_ignore_ascii_case(&entry.label))
    {
        if held.fingerprint == fingerprint {
            return Decision::Skip(held.id, held.priority, "the pool holds it already");
        }
        if refresh
            .as_ref()
            .is_some_and(|refresh| (store.spent)(refresh))
        {
            return Decision::Skip(
                held.id,
                held.priority,
                "imported before; credpool has refreshed the grant since, so the row in the file is stale",
            );
        }
        return Decision::Refuse(Refusal::LabelTaken(held.fingerprint.clone()));
    }
    if let Some(refresh) = refresh {
        if store.lost {
            return Decision::Refuse(Refusal::StoreLost);
        }
        if (store.spent)(&refresh) {
            return Decision::Refuse(Refusal::RefreshTokenSpent);
        }
        let holder = store
            .held
            .iter()
            .filter_map(|held| Some((held.refresh_fingerprint.as_ref()?, &held.label)))
            .chain(refresh_seen.iter().map(|(f, label)| (f, label)))
            .find(|(held, _)| **held == refresh)
            .map(|(_, label)| label.clone());
        if let Some(label) = holder {
            return Decision::Refuse(Refusal::SameRefreshToken(label));
        }
        refresh_seen.push((refresh, entry.label.clone()));
    }
    Decision::Write(Box::new(entry.clone()))
}

/// The report of a row, before its action is known.
fn row_report(row: &Row) -> RowReport {
    let candidate = row.mapped.as_ref().ok();
    RowReport {
        row: row.position,
        hermes_id: row.hermes_id.clone(),
        label: candidate
            .map(|candidate| candidate.entry.label.clone())
            .or_else(|| row.label.clone()),
        kind: candidate.map(|candidate| candidate.entry.credential_kind()),
        fingerprint: candidate.map(|candidate| candidate.entry.fingerprint()),
        priority: None,
        status: candidate.map(|candidate| candidate.entry.status.clone()),
        action: Action::Refused,
        entry: None,
        reason: None,
        detail: None,
    }
}

#[cfg(test)]
mod tests;
