//! `credpool serve`: the arguments; the service itself is `credpool_server`.

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `credpool serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The configuration file (TOML; see docs/CONFIG.md).
    #[arg(long, value_name = "PATH")]
    config: PathBuf,
}

/// Runs the service until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    credpool_server::run(&args.config)
}
