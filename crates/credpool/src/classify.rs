//! `credpool classify` (being written).

use std::process::ExitCode;

/// Arguments of `credpool classify`.
#[derive(Debug, clap::Args)]
pub struct ClassifyArgs {}

/// Runs `credpool classify`.
pub fn run(_args: ClassifyArgs) -> anyhow::Result<ExitCode> {
    Ok(ExitCode::SUCCESS)
}
