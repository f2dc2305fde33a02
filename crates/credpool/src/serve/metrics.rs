//! `/metrics`: the pools' and the refresher's counters in the Prometheus text format.
//!
//! **Invariants:** every series is prefixed `credpool_`; labels carry provider ids, statuses,
//! causes, results and event names only — never an entry label, a fingerprint or a secret.
//! Counters and gauges are read from [`PoolStats`], [`RefresherStats`] and the snapshots at
//! scrape time; only event counts are kept here ([`EventCounts`], fed by one subscription
//! per pool, renewed at the next scrape when a pool restarts).

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;
use std::sync::{Arc, Mutex, PoisonError};

use credpool::{AdminClient, PoolEvent, PoolSnapshot, PoolStats, ProviderId, RefresherStats};

/// Events buffered per pool for the counter before it counts a lag.
const EVENT_BUFFER: usize = 4096;

/// Pool events counted by provider and event name, since the service started.
#[derive(Debug, Default, Clone)]
pub struct EventCounts {
    inner: Arc<Mutex<EventCountsInner>>,
}

#[derive(Debug, Default)]
struct EventCountsInner {
    counts: BTreeMap<(String, String), u64>,
    subscribed: HashSet<ProviderId>,
}

impl EventCounts {
    fn lock(&self) -> std::sync::MutexGuard<'_, EventCountsInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count(&self, provider: &ProviderId, event: &PoolEvent) {
        let (name, amount) = match event {
            PoolEvent::Added { .. } => ("added", 1),
            PoolEvent::Removed { .. } => ("removed", 1),
            PoolEvent::CooledDown { .. } => ("cooled_down", 1),
            PoolEvent::Revived { .. } => ("revived", 1),
            PoolEvent::Dead { .. } => ("dead", 1),
            PoolEvent::Refreshed { .. } => ("refreshed", 1),
            PoolEvent::RefreshFailed { .. } => ("refresh_failed", 1),
            PoolEvent::Quarantined { .. } => ("quarantined", 1),
            PoolEvent::Lagged { missed } => ("lagged", *missed),
        };
        *self
            .lock()
            .counts
            .entry((provider.as_str().to_owned(), name.to_owned()))
            .or_insert(0) += amount;
    }

    /// Subscribes to the pools not followed yet; a subscription ends with its pool (a
    /// supervisor restart), and the pool is followed again at the next call.
    pub async fn follow(&self, admin: &AdminClient, providers: &[ProviderId]) {
        for provider in providers {
            if !self.lock().subscribed.insert(provider.clone()) {
                continue;
            }
            let Ok(mut events) = admin.subscribe(provider, EVENT_BUFFER).await else {
                self.lock().subscribed.remove(provider);
                continue;
            };
            let counts = self.clone();
            let provider = provider.clone();
            tokio::spawn(async move {
                while let Some(event) = events.recv().await {
                    counts.count(&provider, &event);
                }
                counts.lock().subscribed.remove(&provider);
            });
        }
    }

    fn snapshot(&self) -> BTreeMap<(String, String), u64> {
        self.lock().counts.clone()
    }
}

/// The statuses always reported, so a series does not vanish when its count is zero.
const STATUSES: [&str; 3] = ["ok", "cooling_down", "dead"];

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
}

/// Renders the scrape.
pub fn render(scrape: &Scrape<'_>) -> String {
    let Scrape {
        pools,
        snapshots,
        refresher,
        events,
    } = scrape;
    let mut out = Out(String::new());
    out.header("up", "gauge", "1 while the service runs.");
    out.sample("up", &[], 1);

    let counters: [PoolCounter; 6] = [
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
        let mut statuses: Vec<&str> = STATUSES.to_vec();
        for status in stats.entries_by_status.keys() {
            if !statuses.contains(&status.as_str()) {
                statuses.push(status);
            }
        }
        for status in statuses {
            let count = stats.entries_by_status.get(status).copied().unwrap_or(0);
            out.sample(
                "entries",
                &[("provider", provider), ("status", status)],
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
            entries_by_status: BTreeMap::from([("ok".to_owned(), 2)]),
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
        events.count(&ProviderId::new("openai"), &PoolEvent::Lagged { missed: 4 });
        let text = render(&Scrape {
            pools: &[pool],
            snapshots: &[],
            refresher: &refresher,
            events: &events,
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
            "credpool_events_total{provider=\"openai\",event=\"lagged\"} 4",
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
