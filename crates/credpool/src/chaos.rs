//! `credpool chaos` (being built; see its issue).

use std::process::ExitCode;

/// Arguments of `credpool chaos`.
#[derive(Debug, clap::Args)]
pub struct ChaosArgs {}

/// Runs the subcommand.
pub fn run(_args: ChaosArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`credpool chaos` is not built yet")
}
