//! What `credpool bench` prints: the table for people and the JSON report, with each
//! target judged against its floor from the same run.

use std::io::Write;
use std::time::Duration;

use serde_json::{Value, json};

use super::stats::{Samples, median};
use super::{acquire, classify_input, data_plane, durability, memory, stampede};

pub(super) fn us(ns: u64) -> f64 {
    ns as f64 / 1_000.0
}

pub(super) fn ms(ns: u64) -> f64 {
    ns as f64 / 1_000_000.0
}

pub(super) fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

pub(super) fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

pub(super) fn latency_json(samples: &Samples) -> Value {
    json!({
        "p50_ns": samples.p50_ns(),
        "p99_ns": samples.p99_ns(),
        "max_ns": samples.max_ns(),
        "ops_per_s": samples.ops_per_s().round(),
    })
}

/// The human-readable table.
#[derive(Default)]
pub(super) struct Table {
    rows: Vec<[String; 6]>,
}

impl Table {
    pub(super) fn row(
        &mut self,
        name: &str,
        p50: String,
        p99: String,
        max: String,
        rate: String,
        note: &str,
    ) {
        self.rows
            .push([name.to_owned(), p50, p99, max, rate, note.to_owned()]);
    }

    pub(super) fn latency(&mut self, name: &str, samples: &Samples, note: &str) {
        self.row(
            name,
            format!("{:.2} µs", us(samples.p50_ns())),
            format!("{:.2} µs", us(samples.p99_ns())),
            format!("{:.1} µs", us(samples.max_ns())),
            format!("{:.0}/s", samples.ops_per_s()),
            note,
        );
    }

    pub(super) fn print(&self, out: &mut impl Write) -> std::io::Result<()> {
        let header = ["measurement", "p50", "p99", "max", "rate", "target"];
        let mut widths = header.map(|h| h.chars().count());
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |out: &mut dyn Write, cells: &[String]| -> std::io::Result<()> {
            let mut text = String::new();
            for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
                let pad = width.saturating_sub(cell.chars().count());
                if i == 0 || i == cells.len() - 1 {
                    text.push_str(cell);
                    text.push_str(&" ".repeat(pad));
                } else {
                    text.push_str(&" ".repeat(pad));
                    text.push_str(cell);
                }
                text.push_str("  ");
            }
            writeln!(out, "{}", text.trim_end())
        };
        line(out, &header.map(str::to_owned))?;
        for row in &self.rows {
            line(out, row)?;
        }
        Ok(())
    }
}

/// The JSON object, built section by section.
pub(super) struct Report {
    root: serde_json::Map<String, Value>,
    targets: serde_json::Map<String, Value>,
}

pub(super) fn met(flag: bool) -> &'static str {
    if flag { "met" } else { "MISSED" }
}

impl Report {
    pub(super) fn new(quick: bool, workers: usize) -> Report {
        let mut root = serde_json::Map::new();
        root.insert(
            "machine".to_owned(),
            json!({
                "cores": workers,
                "runtime_workers": workers,
                "os": std::env::consts::OS,
                "arch": std::env::consts::ARCH,
            }),
        );
        root.insert("quick".to_owned(), json!(quick));
        for key in [
            "acquire_release",
            "floor_mpsc_oneshot",
            "floor_mutex_pick",
            "scaling",
            "stampede",
            "rotation_commit",
            "write_behind_ops_per_s",
            "restart_10000_ms",
            "bytes_per_entry",
            "classify",
            "data_plane",
        ] {
            root.insert(key.to_owned(), Value::Null);
        }
        Report {
            root,
            targets: serde_json::Map::new(),
        }
    }

    pub(super) fn target(&mut self, name: &str, flag: bool) {
        self.targets.insert(name.to_owned(), json!(flag));
    }

    pub(super) fn acquire(&mut self, results: acquire::AcquireResults, table: &mut Table) {
        let mut pool = serde_json::Map::new();
        let mut actor = serde_json::Map::new();
        let mut floor = serde_json::Map::new();
        for level in &results.levels {
            let key = format!("tasks_{}", level.tasks);
            let ratio = level.pool.p99_ns() as f64 / level.floor.p99_ns().max(1) as f64;
            let mut entry = latency_json(&level.pool);
            entry["p99_over_floor_p99"] = json!(round3(ratio));
            entry["p50_over_floor_p50"] = json!(round3(
                level.pool.p50_ns() as f64 / level.floor.p50_ns().max(1) as f64
            ));
            pool.insert(key.clone(), entry);
            let mut via_actor = latency_json(&level.actor);
            via_actor["p99_over_floor_p99"] = json!(round3(
                level.actor.p99_ns() as f64 / level.floor.p99_ns().max(1) as f64
            ));
            actor.insert(key.clone(), via_actor);
            floor.insert(key, latency_json(&level.floor));
            let note = match level.tasks {
                1 => {
                    let flag = level.pool.p50_ns() <= 1_000 && level.pool.p99_ns() <= 10_000;
                    self.target("tasks_1_p50_le_1us_p99_le_10us", flag);
                    format!("p50 ≤ 1 µs, p99 ≤ 10 µs: {}", met(flag))
                }
                64 => {
                    let rate = level.pool.ops_per_s() >= 1_000_000.0;
                    let tail = ratio <= 4.0;
                    self.target("tasks_64_ge_1M_ops_per_s", rate);
                    self.target("tasks_64_p99_le_4x_floor", tail);
                    format!(
                        "≥ 1M/s: {}; p99 ≤ 4× floor ({ratio:.1}×): {}",
                        met(rate),
                        met(tail)
                    )
                }
                _ => format!("p99 {ratio:.1}× floor"),
            };
            table.latency(
                &format!("floor mpsc+oneshot, {} tasks", level.tasks),
                &level.floor,
                "",
            );
            table.latency(
                &format!("acquire+release, {} tasks", level.tasks),
                &level.pool,
                &note,
            );
            table.latency(
                &format!("  same via the actor (round-robin), {} tasks", level.tasks),
                &level.actor,
                "",
            );
        }
        table.latency("floor Mutex<Vec> pick, 1 task", &results.mutex_floor, "");
        self.root
            .insert("acquire_release".to_owned(), Value::Object(pool));
        self.root
            .insert("floor_mpsc_oneshot".to_owned(), Value::Object(floor));
        self.root
            .insert("acquire_release_via_actor".to_owned(), Value::Object(actor));
        self.root.insert(
            "floor_mutex_pick".to_owned(),
            latency_json(&results.mutex_floor),
        );
    }

    pub(super) fn scaling(&mut self, results: &[(usize, Samples)], table: &mut Table) {
        let mut scaling = serde_json::Map::new();
        let base = results.first().map_or(1, |(_, s)| s.p50_ns().max(1));
        for (entries, samples) in results {
            scaling.insert(
                format!("entries_{entries}"),
                json!({ "p50_ns": samples.p50_ns(), "p99_ns": samples.p99_ns() }),
            );
            let ratio = samples.p50_ns() as f64 / base as f64;
            let note = if *entries == 10_000 {
                let flag = ratio <= 2.0;
                self.target("entries_10000_le_2x_entries_10", flag);
                format!("≤ 2× entries_10 ({ratio:.2}×): {}", met(flag))
            } else {
                format!("{ratio:.2}× entries_10")
            };
            table.latency(
                &format!("acquire+release, {entries} entries"),
                samples,
                &note,
            );
        }
        self.root
            .insert("scaling".to_owned(), Value::Object(scaling));
    }

    pub(super) fn stampede(
        &mut self,
        result: &stampede::StampedeResult,
        floor: &Samples,
        floor_timeout: &Samples,
        table: &mut Table,
    ) {
        let one_request = result.token_requests == 1;
        let tail = ms(result.after_first.p99_ns()) <= 5.0;
        self.target("stampede_one_token_request", one_request);
        self.target("stampede_p99_le_5ms_after_refresh", tail);
        self.root.insert(
            "stampede".to_owned(),
            json!({
                "callers": result.callers,
                "token_requests": result.token_requests,
                "p50_ms": round3(ms(result.done.p50_ns())),
                "p99_ms": round3(ms(result.done.p99_ns())),
                "max_ms": round3(ms(result.done.max_ns())),
                "first_ms": round3(ms(result.done.min_ns())),
                "p99_after_first_ms": round3(ms(result.after_first.p99_ns())),
                "p99_after_token_answer_ms": round3(ms(result.after_answer.p99_ns())),
                "provider_latency_ms": stampede::PROVIDER_LATENCY.as_millis(),
                "callers_waiting_at_answer": result.waiting_at_answer,
                "floor_wake_p99_after_first_ms": round3(ms(floor.p99_ns())),
                "floor_wake_timeout_p99_after_first_ms": round3(ms(floor_timeout.p99_ns())),
            }),
        );
        table.row(
            &format!("floor: wake {} parked tasks (oneshot)", result.callers),
            format!("{:.2} ms", ms(floor.p50_ns())),
            format!("{:.2} ms", ms(floor.p99_ns())),
            format!("{:.2} ms", ms(floor.max_ns())),
            String::new(),
            "after the first wake",
        );
        table.row(
            "floor: same, each wait under a timeout",
            format!("{:.2} ms", ms(floor_timeout.p50_ns())),
            format!("{:.2} ms", ms(floor_timeout.p99_ns())),
            format!("{:.2} ms", ms(floor_timeout.max_ns())),
            String::new(),
            "after the first wake",
        );
        table.row(
            &format!(
                "stampede, {} callers, {} token request(s)",
                result.callers, result.token_requests
            ),
            format!("{:.2} ms", ms(result.done.p50_ns())),
            format!("{:.2} ms", ms(result.done.p99_ns())),
            format!("{:.2} ms", ms(result.done.max_ns())),
            format!("first at {:.2} ms", ms(result.done.min_ns())),
            &format!(
                "1 request: {}; p99 after first {:.2} ms ≤ 5 ms: {}",
                met(one_request),
                ms(result.after_first.p99_ns()),
                met(tail)
            ),
        );
        table.row(
            "  same, after the provider's token answer",
            format!("{:.2} ms", ms(result.after_answer.p50_ns())),
            format!("{:.2} ms", ms(result.after_answer.p99_ns())),
            format!("{:.2} ms", ms(result.after_answer.max_ns())),
            String::new(),
            "answer back, commit + flush, wake",
        );
    }

    pub(super) fn commit(&mut self, result: &durability::CommitResult, table: &mut Table) {
        let flag = us(result.commit.p99_ns()) <= 2_000.0;
        self.target("rotation_commit_p99_le_2ms", flag);
        self.root.insert(
            "rotation_commit".to_owned(),
            json!({
                "p50_us": round1(us(result.commit.p50_ns())),
                "p99_us": round1(us(result.commit.p99_ns())),
                "max_us": round1(us(result.commit.max_ns())),
                "write_behind_ops_per_s": result.write_behind_ops_per_s.round(),
                "floor_fsync_p50_us": round1(us(result.fsync_floor.p50_ns())),
                "floor_fsync_p99_us": round1(us(result.fsync_floor.p99_ns())),
            }),
        );
        table.row(
            "floor: 256-byte append + fsync, same dir",
            format!("{:.0} µs", us(result.fsync_floor.p50_ns())),
            format!("{:.0} µs", us(result.fsync_floor.p99_ns())),
            format!("{:.0} µs", us(result.fsync_floor.max_ns())),
            String::new(),
            "",
        );
        self.root.insert(
            "write_behind_ops_per_s".to_owned(),
            json!(result.write_behind_ops_per_s.round()),
        );
        table.row(
            "rotation commit (sled apply + flush)",
            format!("{:.0} µs", us(result.commit.p50_ns())),
            format!("{:.0} µs", us(result.commit.p99_ns())),
            format!("{:.0} µs", us(result.commit.max_ns())),
            String::new(),
            &format!("p99 ≤ 2 ms: {}", met(flag)),
        );
        table.row(
            "write-behind (1,000-entry batches)",
            String::new(),
            String::new(),
            String::new(),
            format!("{:.0}/s", result.write_behind_ops_per_s),
            "",
        );
    }

    pub(super) fn restart(&mut self, entries: usize, times: &[Duration], table: &mut Table) {
        let mut millis: Vec<f64> = times.iter().map(|t| t.as_secs_f64() * 1000.0).collect();
        let restart = median(&mut millis);
        let flag = restart <= 100.0;
        self.target("restart_10000_le_100ms", flag);
        self.root
            .insert("restart_10000_ms".to_owned(), json!(round1(restart)));
        self.root.insert(
            "restart".to_owned(),
            json!({ "entries": entries, "runs_ms": millis.iter().map(|m| round1(*m)).collect::<Vec<_>>() }),
        );
        table.row(
            &format!("restart, {entries} entries (open → first Select)"),
            format!("{restart:.1} ms"),
            String::new(),
            String::new(),
            String::new(),
            &format!("≤ 100 ms: {}", met(flag)),
        );
    }

    pub(super) fn memory(&mut self, probe: &memory::MemoryProbe, table: &mut Table) {
        let flag = probe.bytes_per_entry <= 1024.0;
        self.target("bytes_per_entry_le_1KiB", flag);
        self.root.insert(
            "bytes_per_entry".to_owned(),
            json!(probe.bytes_per_entry.round()),
        );
        self.root.insert(
            "memory".to_owned(),
            json!({
                "entries": probe.entries,
                "rss_before": probe.rss_before,
                "rss_after": probe.rss_after,
            }),
        );
        table.row(
            &format!("memory at {} entries (RSS growth)", probe.entries),
            format!("{:.0} B/entry", probe.bytes_per_entry),
            String::new(),
            String::new(),
            String::new(),
            &format!("≤ 1 KiB: {}", met(flag)),
        );
    }

    pub(super) fn classify(&mut self, result: &classify_input::ClassifyResult, table: &mut Table) {
        self.root.insert(
            "classify".to_owned(),
            json!({
                "lines": result.lines,
                "shapes": 14,
                "classes": result.classes,
                "lines_per_s": result.lines_per_s.round(),
            }),
        );
        table.row(
            &format!("classify, {} mixed lines (in memory)", result.lines),
            String::new(),
            String::new(),
            String::new(),
            format!("{:.0} lines/s", result.lines_per_s),
            "",
        );
    }

    pub(super) fn data_plane(&mut self, result: &data_plane::DataPlaneResult, table: &mut Table) {
        let p50 = us(result.one.p50_ns());
        let flag_latency = p50 <= 50.0;
        let throughput = result.many.ops_per_s();
        let flag_throughput = throughput >= 50_000.0;
        self.target("data_plane_pair_p50_le_50us", flag_latency);
        self.target("data_plane_64_connections_ge_50k_per_s", flag_throughput);
        self.root.insert(
            "data_plane".to_owned(),
            json!({
                "pair_1_connection": latency_json(&result.one),
                "floor_health_1_connection": latency_json(&result.floor),
                "pair_64_connections": latency_json(&result.many),
                "connections": result.connections,
                "pairs_per_s_64_connections": throughput.round(),
                "pair_p50_over_floor_p50": round3(result.one.p50_ns() as f64 / result.floor.p50_ns().max(1) as f64),
            }),
        );
        table.latency(
            "data plane: lease + release, 1 connection (socket)",
            &result.one,
            &format!("p50 ≤ 50 µs: {}", met(flag_latency)),
        );
        table.latency(
            "data plane floor: GET /v1/health, 1 connection",
            &result.floor,
            "",
        );
        table.latency(
            &format!(
                "data plane: lease + release, {} connections",
                result.connections
            ),
            &result.many,
            &format!("≥ 50,000/s: {}", met(flag_throughput)),
        );
    }

    pub(super) fn finish(mut self) -> Value {
        self.root
            .insert("targets".to_owned(), Value::Object(self.targets));
        Value::Object(self.root)
    }
}
