//! The `credpool` command.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod classify;

/// credpool: one owner for the credentials an LLM agent runtime shares.
#[derive(Debug, Parser)]
#[command(name = "credpool", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Explain what credpool would do with a provider's response.
    Classify(classify::ClassifyArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Classify(args) => classify::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("credpool: {error:#}");
            ExitCode::FAILURE
        }
    }
}
