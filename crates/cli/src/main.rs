//! The `credpool` command.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod admin_cli;
mod bench;
mod chaos;
mod classify;
mod demo;
mod fake_provider;
mod serve;
mod table;

/// credpool: one owner for the credentials an LLM agent runtime shares.
#[derive(Debug, Parser)]
#[command(name = "credpool", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole mission on this machine: fake providers on loopback, workers, faults.
    Demo(demo::DemoArgs),
    /// Run the pool as a service with an admin HTTP API.
    Serve(serve::ServeArgs),
    /// Inspect and steer a running service (or a stopped one's data dir).
    Admin(admin_cli::AdminArgs),
    /// Explain what credpool would do with a provider's response.
    Classify(classify::ClassifyArgs),
    /// Measure acquire/release, scaling, stampedes, commits, restart and memory.
    Bench(bench::BenchArgs),
    /// Kill a real `credpool serve` with SIGKILL during rotations and check every grant.
    Chaos(chaos::ChaosArgs),
    /// A fake OAuth/API provider on loopback, for tests in other languages.
    #[command(hide = true)]
    FakeProvider(fake_provider::FakeProviderArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Admin(args) => admin_cli::run(args),
        Command::Classify(args) => classify::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Chaos(args) => chaos::run(args),
        Command::FakeProvider(args) => fake_provider::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("credpool: {error:#}");
            ExitCode::FAILURE
        }
    }
}
