//! What the demo shows: event lines while it runs, the status line, the summary and the table.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Instant;

use credpool::admin::{Snapshot, Stats};
use credpool::{Clock, Credpool, EntryView, PoolEvent, PoolSnapshot, SystemClock};
use credpool_test_support::FakeProvider;

use super::progress::Progress;
use super::shared::*;

/// Prints notable pool events (deaths, failed refreshes, cooldowns) as lines.
pub(super) async fn spawn_event_lines(
    pool: &Credpool,
    progress: &Progress,
) -> tokio::task::JoinHandle<()> {
    let admin = pool.admin();
    let mut streams = Vec::new();
    for provider in [xai(), openai()] {
        if let Ok(stream) = admin.subscribe(&provider, 256, None).await {
            streams.push(stream);
        }
    }
    let labels = label_map(pool).await;
    let to_stderr = progress.to_stderr;
    let bar = progress.bar.clone();
    tokio::spawn(async move {
        let (sender, mut receiver) = tokio::sync::mpsc::channel(256);
        for mut stream in streams {
            let sender = sender.clone();
            tokio::spawn(async move {
                while let Some(event) = stream.recv().await {
                    if sender.send(event).await.is_err() {
                        break;
                    }
                }
            });
        }
        drop(sender);
        while let Some(event) = receiver.recv().await {
            let Some(text) = describe(&event.event, &labels) else {
                continue;
            };
            match &bar {
                Some(bar) => bar.println(&text),
                None if to_stderr => eprintln!("{text}"),
                None => println!("{text}"),
            }
        }
    })
}

pub(super) async fn label_map(pool: &Credpool) -> BTreeMap<String, String> {
    all_entries(pool)
        .await
        .into_iter()
        .map(|view| (view.id.to_string(), view.label))
        .collect()
}

pub(super) fn describe(event: &PoolEvent, labels: &BTreeMap<String, String>) -> Option<String> {
    let name = |entry: &dyn std::fmt::Display| {
        let id = entry.to_string();
        labels.get(&id).cloned().unwrap_or(id)
    };
    match event {
        PoolEvent::CooledDown {
            provider,
            entry,
            until,
            cause,
            ..
        } => Some(format!(
            "  {provider}/{}: cooling down for {} s ({})",
            name(entry),
            until.since(SystemClock.now()).as_secs(),
            serde_json::to_value(cause)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("{cause:?}"))
        )),
        PoolEvent::Dead {
            provider,
            entry,
            reason,
        } => Some(format!("  {provider}/{}: dead ({reason})", name(entry))),
        PoolEvent::Refreshed {
            provider,
            entry,
            generation,
        } => Some(format!(
            "  {provider}/{}: tokens rotated and stored (generation {})",
            name(entry),
            generation.0
        )),
        PoolEvent::RefreshFailed {
            provider,
            entry,
            reason,
        } => Some(format!(
            "  {provider}/{}: refresh failed ({reason})",
            name(entry)
        )),
        _ => None,
    }
}

pub(super) async fn all_snapshots(pool: &Credpool) -> Vec<PoolSnapshot> {
    let admin = pool.admin();
    let mut out = Vec::new();
    for provider in [xai(), openai()] {
        if let Ok(snapshot) = admin.run(&provider, Snapshot).await {
            out.push(snapshot);
        }
    }
    out
}

pub(super) async fn all_entries(pool: &Credpool) -> Vec<EntryView> {
    all_snapshots(pool)
        .await
        .into_iter()
        .flat_map(|snapshot| snapshot.entries)
        .collect()
}

pub(super) async fn entry_counts(pool: &Credpool) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for view in all_entries(pool).await {
        *counts.entry(view.status.to_string()).or_default() += 1;
    }
    counts
}

pub(super) fn format_counts(counts: &BTreeMap<String, usize>) -> String {
    let parts: Vec<String> = counts
        .iter()
        .map(|(status, n)| format!("{n} {status}"))
        .collect();
    format!(
        "{} entries ({})",
        counts.values().sum::<usize>(),
        parts.join(", ")
    )
}

pub(super) async fn status_line(
    pool: &Credpool,
    fake: &FakeProvider,
    tally: &Tally,
    started: Instant,
) -> String {
    let (mut refreshes, mut rotations, mut cooldowns) = (0, 0, 0);
    for provider in [xai(), openai()] {
        if let Ok(stats) = pool.admin().run(&provider, Stats).await {
            refreshes += stats.refreshes_succeeded;
            rotations += stats.rotations;
            cooldowns += stats.cooldowns.values().sum::<u64>();
        }
    }
    format!(
        "t={:>3}s requests {} ok {} | refreshes {} (token endpoint {}) | rotations {} | \
         cooldowns {} | faults {}",
        started.elapsed().as_secs(),
        tally.requests.load(Ordering::Relaxed),
        tally.succeeded.load(Ordering::Relaxed),
        refreshes,
        fake.token_requests(),
        rotations,
        cooldowns,
        tally.faults.load(Ordering::Relaxed),
    )
}

pub(super) async fn summarize(
    pool: &Credpool,
    fake: &FakeProvider,
    tally: &Tally,
    failed_workers: u64,
    resumed: bool,
    args: &DemoArgs,
    started: Instant,
) -> Summary {
    let (mut refreshes, mut rotations) = (0, 0);
    let mut cooldowns = BTreeMap::new();
    for provider in [xai(), openai()] {
        if let Ok(stats) = pool.admin().run(&provider, Stats).await {
            refreshes += stats.refreshes_succeeded;
            rotations += stats.rotations;
            for (cause, n) in stats.cooldowns {
                *cooldowns.entry(cause).or_default() += n;
            }
        }
    }
    Summary {
        requests: tally.requests.load(Ordering::Relaxed),
        succeeded: tally.succeeded.load(Ordering::Relaxed),
        failed_workers,
        unrecovered_errors: tally.unrecovered.load(Ordering::Relaxed),
        exhausted_waits: tally.exhausted_waits.load(Ordering::Relaxed),
        api_requests: fake.api_requests(),
        refreshes,
        token_endpoint_requests: fake.token_requests(),
        rotations,
        cooldowns,
        reuse_detected: fake.reuse_detections(),
        faults_injected: tally.faults.load(Ordering::Relaxed),
        entries: entry_counts(pool).await,
        resumed_from_store: resumed,
        workers: u64::from(args.workers) * 3,
        duration_s: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        data_dir: args.data_dir.display().to_string(),
    }
}

pub(super) fn print_table(out: &mut dyn Write, summary: &Summary, snapshots: &[PoolSnapshot]) {
    let _ = writeln!(out);
    let _ = write!(out, "{}", crate::table::status(snapshots));
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "requests {} · succeeded {} · failed workers {} of {} · refreshes {} · token-endpoint \
         requests {} · rotations {} · reuse detected {} · {}",
        summary.requests,
        summary.succeeded,
        summary.failed_workers,
        summary.workers,
        summary.refreshes,
        summary.token_endpoint_requests,
        summary.rotations,
        summary.reuse_detected,
        if summary.resumed_from_store {
            "resumed from store"
        } else {
            "new store"
        }
    );
}
