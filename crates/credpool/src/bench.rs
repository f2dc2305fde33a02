//! `credpool bench` (being built; see its issue).

use std::process::ExitCode;

/// Arguments of `credpool bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {}

/// Runs the subcommand.
pub fn run(_args: BenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`credpool bench` is not built yet")
}
