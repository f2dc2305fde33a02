//! `credpool demo` (being built; see its issue).

use std::process::ExitCode;

/// Arguments of `credpool demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {}

/// Runs the subcommand.
pub fn run(_args: DemoArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`credpool demo` is not built yet")
}
