//! `credpool bench`: measures acquire + release through the real actor path (next to a raw
//! mpsc + oneshot floor and an in-process mutex floor, in the same run), how it scales with
//! entries, a 10,000-caller refresh stampede against the loopback fake provider, the
//! store-before-use commit, write-behind, restart and memory per entry, and classification
//! throughput.
//!
//! It prints a table, and with `--json` one JSON object as the last line of stdout. The run
//! uses a tokio multi-thread runtime with one worker per core, as an embedding runtime would.
//! `--quick` shrinks every size (a smoke run that checks the shape, not the speed).
//!
//! **Invariants:** the JSON object is the last line of stdout and carries every field even
//! when a section is skipped (as `null`); nothing here asserts a speed — targets are reported
//! as `met` flags for a reader, never turned into a failing exit code.

mod acquire;
mod classify_input;
mod data_plane;
mod durability;
mod memory;
mod report;
mod stampede;
mod stats;

use std::io::Write;
use std::process::ExitCode;

use self::acquire::{Sizes, settle};
use self::report::{Report, Table};

/// Arguments of `credpool bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Print one JSON object as the last line of stdout (after the table).
    #[arg(long)]
    json: bool,
    /// Tiny sizes: checks that every section runs, says nothing about speed.
    #[arg(long)]
    quick: bool,
    /// Run only these sections (comma-separated): acquire, scaling, stampede, commit,
    /// restart, memory, classify, data-plane. Skipped sections are `null` in the JSON.
    #[arg(long, value_delimiter = ',', value_name = "SECTION")]
    only: Vec<Section>,
    /// Write N lines of mixed provider answers (the classify section's input) to stdout as
    /// `credpool classify --batch` input, and exit.
    #[arg(long, value_name = "N")]
    classify_input: Option<usize>,
    /// Internal: measure memory per entry with N entries in this process and print one JSON
    /// line (the memory section runs this in a fresh child process).
    #[arg(long, value_name = "N", hide = true)]
    memory_probe: Option<usize>,
}

/// A part of the bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Section {
    /// Acquire + release at 1, 8 and 64 tasks, with the floors.
    Acquire,
    /// Acquire + release with 10, 1,000 and 10,000 entries.
    Scaling,
    /// 10,000 concurrent auth failures on one OAuth entry.
    Stampede,
    /// The rotation commit and write-behind.
    Commit,
    /// Restart with 10,000 entries.
    Restart,
    /// Resident memory per entry at 100,000 entries.
    Memory,
    /// `credpool_core::classify` throughput.
    Classify,
    /// Lease + release over the data plane's Unix socket: 1 and 64 connections.
    DataPlane,
}

/// The sizes of a run.
#[derive(Debug, Clone, Copy)]
struct Plan {
    acquire: Sizes,
    scaling_ops: usize,
    stampede_callers: usize,
    rotations: usize,
    write_behind_batches: usize,
    restart_entries: usize,
    restart_runs: usize,
    memory_entries: usize,
    classify_lines: usize,
    classify_rounds: usize,
    data_plane_pairs: usize,
    data_plane_window: std::time::Duration,
}

impl Plan {
    fn full() -> Plan {
        Plan {
            acquire: Sizes {
                ops: 256_000,
                entries: 8,
            },
            scaling_ops: 100_000,
            stampede_callers: 10_000,
            rotations: 300,
            write_behind_batches: 20,
            restart_entries: 10_000,
            restart_runs: 3,
            memory_entries: 100_000,
            classify_lines: 100_000,
            classify_rounds: 5,
            data_plane_pairs: 20_000,
            data_plane_window: std::time::Duration::from_secs(3),
        }
    }

    fn quick() -> Plan {
        Plan {
            acquire: Sizes {
                ops: 2_048,
                entries: 8,
            },
            scaling_ops: 1_000,
            stampede_callers: 100,
            rotations: 10,
            write_behind_batches: 2,
            restart_entries: 1_000,
            restart_runs: 1,
            memory_entries: 1_000,
            classify_lines: 1_400,
            classify_rounds: 1,
            data_plane_pairs: 200,
            data_plane_window: std::time::Duration::from_millis(200),
        }
    }
}

/// Runs the subcommand.
pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if let Some(count) = args.classify_input {
        classify_input::write_input(count)?;
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if let Some(entries) = args.memory_probe {
        let probe = runtime.block_on(memory::probe(entries))?;
        println!("{}", serde_json::to_string(&probe)?);
        return Ok(ExitCode::SUCCESS);
    }
    let plan = if args.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    let wanted = |section: Section| args.only.is_empty() || args.only.contains(&section);
    let mut table = Table::default();
    let report = runtime.block_on(async {
        let mut report = Report::new(args.quick, runtime_workers());
        if wanted(Section::Acquire) {
            eprintln!("bench: acquire + release …");
            report.acquire(acquire::acquire_release(plan.acquire).await?, &mut table);
            settle().await;
        }
        if wanted(Section::Scaling) {
            eprintln!("bench: scaling …");
            let mut scaling = Vec::new();
            for entries in [10_usize, 1_000, 10_000] {
                scaling.push((entries, acquire::scaling(entries, plan.scaling_ops).await?));
                settle().await;
            }
            report.scaling(&scaling, &mut table);
        }
        if wanted(Section::Stampede) {
            eprintln!("bench: stampede …");
            let result = stampede::stampede(plan.stampede_callers).await?;
            settle().await;
            let floor = stampede::wake_floor(plan.stampede_callers, false).await?;
            settle().await;
            let floor_timeout = stampede::wake_floor(plan.stampede_callers, true).await?;
            report.stampede(&result, &floor, &floor_timeout, &mut table);
            settle().await;
        }
        if wanted(Section::Commit) {
            eprintln!("bench: rotation commit and write-behind …");
            let result =
                durability::rotation_commit(plan.rotations, plan.write_behind_batches).await?;
            report.commit(&result, &mut table);
        }
        if wanted(Section::Restart) {
            eprintln!("bench: restart …");
            let times = durability::restart(plan.restart_entries, plan.restart_runs).await?;
            report.restart(plan.restart_entries, &times, &mut table);
        }
        if wanted(Section::DataPlane) {
            eprintln!("bench: data plane over the socket …");
            let result =
                data_plane::data_plane(plan.data_plane_pairs, plan.data_plane_window).await?;
            report.data_plane(&result, &mut table);
        }
        anyhow::Ok(report)
    })?;
    let mut report = report;
    if wanted(Section::Memory) {
        eprintln!("bench: memory per entry …");
        let probe = memory::run_probe(plan.memory_entries)?;
        report.memory(&probe, &mut table);
    }
    if wanted(Section::Classify) {
        eprintln!("bench: classify …");
        let result = classify_input::throughput(plan.classify_lines, plan.classify_rounds);
        report.classify(&result, &mut table);
    }
    let mut out = std::io::stdout().lock();
    table.print(&mut out)?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report.finish())?)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn runtime_workers() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}
