//! `credpool admin` (being built; see its issue).

use std::process::ExitCode;

/// Arguments of `credpool admin`.
#[derive(Debug, clap::Args)]
pub struct AdminArgs {}

/// Runs the subcommand.
pub fn run(_args: AdminArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`credpool admin` is not built yet")
}
