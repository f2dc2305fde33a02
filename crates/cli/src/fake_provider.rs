//! `credpool fake-provider` (hidden): the test suite's fake OAuth/API provider as a process,
//! for tests in other languages (the Python client's). It listens on a loopback port, prints
//! one JSON line with its URLs, the grants and keys it issued, and serves until SIGTERM,
//! SIGINT or the end of stdin.
//!
//! **Invariant:** loopback only; the secrets it prints are its own fakes.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use credpool_test_support::{ApiKeyMode, FakeProvider, FakeProviderConfig};
use serde_json::{Map, Value, json};

/// Arguments of `credpool fake-provider`.
#[derive(Debug, clap::Args)]
pub struct FakeProviderArgs {
    /// Issue an OAuth grant with this label (repeatable).
    #[arg(long = "grant", value_name = "LABEL")]
    grants: Vec<String>,
    /// Accept this API key (repeatable).
    #[arg(long = "key", value_name = "KEY")]
    keys: Vec<String>,
    /// Lifetime of issued access tokens, in seconds.
    #[arg(long, default_value_t = 3600)]
    access_lifetime_s: u64,
}

/// Runs the fake until stopped.
///
/// # Errors
/// The runtime or the listener cannot start.
pub fn run(args: FakeProviderArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let fake = FakeProvider::start(FakeProviderConfig {
            access_token_lifetime: Duration::from_secs(args.access_lifetime_s.max(1)),
            ..FakeProviderConfig::default()
        })
        .await;
        let mut grants = Map::new();
        for label in &args.grants {
            let (access, refresh) = fake.grant(label);
            grants.insert(
                label.clone(),
                json!({ "access_token": access.expose(), "refresh_token": refresh.expose() }),
            );
        }
        for key in &args.keys {
            fake.add_api_key(key, ApiKeyMode::Ok);
        }
        let base = fake.base_url();
        let line = json!({
            "base_url": base,
            "api_url": fake.api_url(),
            "token_url": fake.token_url(),
            "control_url": format!("{base}/__control"),
            "grants": Value::Object(grants),
            "keys": args.keys,
        });
        {
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{line}")?;
            stdout.flush()?;
        }
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        // The end of stdin (its parent gone) stops it too.
        let (closed, stdin_closed) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
            let _ = closed.send(());
        });
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
            _ = stdin_closed => {}
        }
        Ok(ExitCode::SUCCESS)
    })
}
