//! `credpool serve` (being built; see its issue).

use std::process::ExitCode;

/// Arguments of `credpool serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {}

/// Runs the subcommand.
pub fn run(_args: ServeArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`credpool serve` is not built yet")
}
