//! `/metrics`: the pools' and the refresher's counters in the Prometheus text format.
//!
//! **Invariants:** every series is prefixed `credpool_`; labels carry provider ids, statuses,
//! causes, results and event names only — never an entry label, a fingerprint or a secret.
//! Counters and gauges are read from [`PoolStats`], [`RefresherStats`] and the snapshots at
//! scrape time; only event counts are kept here ([`EventCounts`], fed by one subscription to
//! every pool, including pools started later).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex, PoisonError};

use credpool::{
    AdminClient, ClientError, PoolEvent, PoolSnapshot, PoolStats, RefresherStats, StatusKind,
    StoreHealth,
};

/// Events buffered for the counter before it counts a lag.
const EVENT_BUFFER: usize = 4096;

/// Pool events counted by provider and event name, since the service started.
#[derive(Debug, Default, Clone)]
pub struct EventCounts {
    inner: Arc<Mutex<EventCountsInner>>,
}

#[derive(Debug, Default)]
struct EventCountsInner {
    counts: BTreeMap<(String, String), u64>,
}

impl EventCounts {
    fn lock(&self) -> std::sync::MutexGuard<'_, EventCountsInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count(&self, event: &PoolEvent) {
        let amount = match event {
            PoolEvent::Lagged { missed } => *missed,
            _ => 1,
        };
        let provider = event.provider().map_or("", |p| p.as_str()).to_owned();
        *self
            .lock()
            .counts
            .entry((provider, event.name().to_owned()))
            .or_insert(0) += amount;
    }

    /// Counts the events of every pool, now and started later, until the tree stops.
    ///
    /// # Errors
    /// The registry is not running.
    pub async fn follow(&self, admin: &AdminClient) -> Result<(), ClientError> {
        let mut events = admin.subscribe_all(EVENT_BUFFER, None).await?;
        let counts = self.clone();
        tokio::spawn(async move {
            while let Some(record) = events.recv().await {
                counts.count(&record.event);
            }
        });
        Ok(())
    }

    fn snapshot(&self) -> BTreeMap<(String, String), u64> {
        self.lock().counts.clone()
    }
}

/// The statuses always reported, so a series does not vanish when its count is zero.
const STATUSES: [StatusKind; 3] = [StatusKind::Ok, StatusKind::CoolingDown, StatusKind::Dead];

/// The cooldown causes always reported.
const CAUSES: [&str; 5] = ["auth", "rate_limited", "billing", "refresh_failed", "other"];

/// Escapes a label value.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A pool counter: its name, its help text and how to read it.
type PoolCounter = (&'static str, &'static str, fn(&PoolStats) -> u64);

struct Out(String);

impl Out {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP credpool_{name} {help}");
        let _ = writeln!(self.0, "# TYPE credpool_{name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let _ = write!(self.0, "credpool_{name}");
        if !labels.is_empty() {
            let labels: Vec<String> = labels
                .iter()
                .map(|(key, value)| format!("{key}=\"{}\"", escape(value)))
                .collect();
            let _ = write!(self.0, "{{{}}}", labels.join(","));
        }
        let _ = writeln!(self.0, " {value}");
    }
}

fn provider_of(stats: &PoolStats) -> &str {
    stats.provider.as_ref().map_or("", |p| p.as_str())
}

/// What one scrape reads.
pub struct Scrape<'a> {
    /// Every running pool's counters.
    pub pools: &'a [PoolStats],
    /// Every running pool's snapshot.
    pub snapshots: &'a [PoolSnapshot],
    /// The refresher's counters.
    pub refresher: &'a RefresherStats,
    /// Pool events counted since the start.
    pub events: &'a EventCounts,
    /// Whether the store's writes succeed.
    pub store: &'a StoreHealth,
}

/// Renders the scrape.
pub fn render(scrape: &Scrape<'_>) -> String {
    let Scrape {
        pools,
        snapshots,
        refresher,
        events,
        store,
    } = scrape;
    let mut out = Out(String::new());
    out.header("up", "gauge", "1 while the service runs.");
    out.sample("up", &[], 1);
    out.header(
        "store_failing",
        "gauge",
        "1 while the store refuses writes (from a failed write until one succeeds).",
    );
    out.sample(
        "store_failing",
        &[],
        u8::from(matches!(store, StoreHealth::Failing { .. })),
    );

    let counters: [PoolCounter; 8] = [
        ("selections_total", "Leases granted.", |s| s.selections),
        (
            "exhausted_total",
            "Selections that found no available entry.",
            |s| s.exhausted,
        ),
        (
            "rotations_total",
            "Rotations to another entry after a failure.",
            |s| s.rotations,
        ),
        (
            "stale_reports_total",
            "Auth-failure reports answered with the current token (older generation).",
            |s| s.stale_reports,
        ),
        (
            "joined_refreshes_total",
            "Auth-failure reports that joined a refresh in flight.",
            |s| s.joined_refreshes,
        ),
        (
            "refreshes_started_total",
            "Refreshes started by the pools.",
            |s| s.refreshes_started,
        ),
        (
            "store_errors_total",
            "Writes the store refused (status and token changes, markers, write-behind).",
            |s| s.store_errors,
        ),
        (
            "unstored_rotations",
            "Rotated token pairs the store refused, kept unexposed while their commit is retried.",
            |s| s.unstored_rotations,
        ),
    ];
    for (name, help, value) in counters {
        out.header(name, "counter", help);
        for stats in *pools {
            out.sample(name, &[("provider", provider_of(stats))], value(stats));
        }
    }

    out.header(
        "refreshes_total",
        "counter",
        "Refreshes finished by the pools, by result.",
    );
    for stats in *pools {
        let provider = provider_of(stats);
        out.sample(
            "refreshes_total",
            &[("provider", provider), ("result", "success")],
            stats.refreshes_succeeded,
        );
        out.sample(
            "refreshes_total",
            &[("provider", provider), ("result", "failure")],
            stats.refreshes_failed,
        );
    }

    out.header("cooldowns_total", "counter", "Cooldowns applied, by cause.");
    for stats in *pools {
        let provider = provider_of(stats);
        let mut causes: Vec<&str> = CAUSES.to_vec();
        for cause in stats.cooldowns.keys() {
            if !causes.contains(&cause.as_str()) {
                causes.push(cause);
            }
        }
        for cause in causes {
            let count = stats.cooldowns.get(cause).copied().unwrap_or(0);
            out.sample(
                "cooldowns_total",
                &[("provider", provider), ("cause", cause)],
                count,
            );
        }
    }

    out.header("entries", "gauge", "Entries by status.");
    for stats in *pools {
        let provider = provider_of(stats);
        for status in STATUSES {
            let count = stats.entries_by_status.get(&status).copied().unwrap_or(0);
            out.sample(
                "entries",
                &[("provider", provider), ("status", status.as_str())],
                count,
            );
        }
    }

    out.header("leases_held", "gauge", "Leases held now.");
    for stats in *pools {
        out.sample(
            "leases_held",
            &[("provider", provider_of(stats))],
            stats.leases_held,
        );
    }

    out.header(
        "entries_missing_secret",
        "gauge",
        "Entries whose borrowed secret could not be read (not selectable).",
    );
    for snapshot in *snapshots {
        let missing = snapshot.entries.iter().filter(|e| e.missing_secret).count();
        out.sample(
            "entries_missing_secret",
            &[("provider", snapshot.provider.as_str())],
            missing,
        );
    }
    out.header(
        "quarantined_records",
        "gauge",
        "Stored records that could not be decoded.",
    );
    for snapshot in *snapshots {
        out.sample(
            "quarantined_records",
            &[("provider", snapshot.provider.as_str())],
            snapshot.quarantined.len(),
        );
    }

    out.header(
        "events_total",
        "counter",
        "Pool events since the service started, by event.",
    );
    for ((provider, event), count) in events.snapshot() {
        out.sample(
            "events_total",
            &[("provider", &provider), ("event", &event)],
            count,
        );
    }

    out.header(
        "token_exchanges_total",
        "counter",
        "Token-endpoint exchanges finished by the refresher, by result.",
    );
    for (result, value) in [
        ("success", refresher.succeeded),
        ("transient", refresher.failed_transient),
        ("terminal", refresher.failed_terminal),
    ] {
        out.sample("token_exchanges_total", &[("result", result)], value);
    }
    out.header(
        "token_exchanges_joined_total",
        "counter",
        "Refresh requests that joined an exchange in flight.",
    );
    out.sample("token_exchanges_joined_total", &[], refresher.joined);
    out.header(
        "token_exchanges_in_flight",
        "gauge",
        "Token-endpoint exchanges in flight.",
    );
    out.sample("token_exchanges_in_flight", &[], refresher.in_flight);
    out.header(
        "refresh_timers_armed",
        "gauge",
        "Proactive refresh timers armed.",
    );
    out.sample("refresh_timers_armed", &[], refresher.timers_armed);
    out.header(
        "refresh_timers_fired_total",
        "counter",
        "Proactive refresh timers that fired.",
    );
    out.sample("refresh_timers_fired_total", &[], refresher.timers_fired);

    let name = "token_endpoint_latency_seconds";
    out.header(
        name,
        "histogram",
        "Duration of token-endpoint exchanges (any result).",
    );
    let mut cumulative = 0u64;
    for (index, bound_ms) in RefresherStats::LATENCY_BUCKETS_MS.iter().enumerate() {
        cumulative += refresher
            .exchange_latency_buckets
            .get(index)
            .copied()
            .unwrap_or(0);
        let le = format!("{}", *bound_ms as f64 / 1000.0);
        out.sample(&format!("{name}_bucket"), &[("le", &le)], cumulative);
    }
    out.sample(
        &format!("{name}_bucket"),
        &[("le", "+Inf")],
        refresher.exchange_latency_count,
    );
    out.sample(
        &format!("{name}_sum"),
        &[],
        refresher.exchange_latency_sum_us as f64 / 1_000_000.0,
    );
    out.sample(
        &format!("{name}_count"),
        &[],
        refresher.exchange_latency_count,
    );
    out.0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::BTreeMap;

    use credpool::ProviderId;

    use super::*;

    #[test]
    fn a_scrape_names_every_series_with_the_prefix_and_the_values() {
        let pool = PoolStats {
            provider: Some(ProviderId::new("openai")),
            selections: 7,
            refreshes_succeeded: 2,
            refreshes_failed: 1,
            cooldowns: BTreeMap::from([("rate_limited".to_owned(), 3)]),
            entries_by_status: BTreeMap::from([(StatusKind::Ok, 2)]),
            store_errors: 5,
            ..PoolStats::default()
        };
        let refresher = RefresherStats {
            succeeded: 2,
            exchange_latency_buckets: vec![1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
            exchange_latency_count: 2,
            exchange_latency_sum_us: 100_500,
            ..RefresherStats::default()
        };
        let events = EventCounts::default();
        events.count(&PoolEvent::Dead {
            provider: ProviderId::new("openai"),
            entry: credpool::EntryId(1),
            reason: "invalid_grant".to_owned(),
        });
        events.count(&PoolEvent::Lagged { missed: 4 });
        let failing = StoreHealth::Failing {
            since: credpool::Timestamp::from_secs(1_800_000_000),
            reason: "no space left on device".to_owned(),
        };
        let text = render(&Scrape {
            pools: &[pool],
            snapshots: &[],
            refresher: &refresher,
            events: &events,
            store: &failing,
        });
        for line in [
            "credpool_selections_total{provider=\"openai\"} 7",
            "credpool_refreshes_total{provider=\"openai\",result=\"success\"} 2",
            "credpool_refreshes_total{provider=\"openai\",result=\"failure\"} 1",
            "credpool_cooldowns_total{provider=\"openai\",cause=\"rate_limited\"} 3",
            "credpool_cooldowns_total{provider=\"openai\",cause=\"billing\"} 0",
            "credpool_entries{provider=\"openai\",status=\"ok\"} 2",
            "credpool_entries{provider=\"openai\",status=\"dead\"} 0",
            "credpool_token_exchanges_total{result=\"success\"} 2",
            "credpool_token_endpoint_latency_seconds_bucket{le=\"0.005\"} 1",
            "credpool_token_endpoint_latency_seconds_bucket{le=\"0.05\"} 1",
            "credpool_token_endpoint_latency_seconds_bucket{le=\"0.1\"} 2",
            "credpool_token_endpoint_latency_seconds_bucket{le=\"+Inf\"} 2",
            "credpool_token_endpoint_latency_seconds_sum 0.1005",
            "credpool_token_endpoint_latency_seconds_count 2",
            "credpool_events_total{provider=\"openai\",event=\"dead\"} 1",
            "credpool_events_total{provider=\"\",event=\"lagged\"} 4",
            "credpool_store_failing 1",
            "credpool_store_errors_total{provider=\"openai\"} 5",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("credpool_"), "{line}");
        }
    }
}
