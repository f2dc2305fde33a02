//! What the demo's rooms share: its arguments, timings, names and counters.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use credpool::ProviderId;
use serde::{Deserialize, Serialize};

/// Arguments of `credpool demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Where the pool is stored; a second run on the same dir resumes from it.
    #[arg(long, value_name = "DIR", default_value = "./credpool-data")]
    pub(super) data_dir: PathBuf,
    /// Workers of each kind (title, compression, vision).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub(super) workers: u16,
    /// How long the workers run, in seconds.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(super) duration: u64,
    /// Print one JSON summary as the last line of stdout (progress goes to stderr).
    #[arg(long)]
    pub(super) json: bool,
    /// Run no workers: serve the pool on its data-plane socket (and keep the fake providers
    /// up) until Ctrl-C, for clients in other processes (the Python client).
    #[arg(long, conflicts_with = "json")]
    pub(super) serve: bool,
}

/// How long the fake's access tokens live.
pub(super) const ACCESS_LIFETIME: Duration = Duration::from_secs(8);
/// The demo's refresh-failure cooldown (the default is 60 s; a 20 s demo wants to see the end
/// of one).
pub(super) const REFRESH_FAILED_COOLDOWN: Duration = Duration::from_secs(5);
/// The demo's refresh-loop guard (the default is 30 s, against tokens that live an hour; the
/// demo's live 8 s and are force-expired every 4 s).
pub(super) const REFRESH_LOOP_GUARD: Duration = Duration::from_secs(1);
pub(super) const FAKE_STATE_FILE: &str = "demo-fake-provider.json";
pub(super) const FAKE_TOKENS_FILE: &str = "demo-fake-tokens.json";
/// How long stopping workers get to finish the request they are in.
pub(super) const WORKER_STOP_TIMEOUT: Duration = Duration::from_secs(15);
pub(super) const OPENAI_KEYS: [&str; 3] = ["openai-key-1", "openai-key-2", "openai-key-3"];
pub(super) const XAI_GRANTS: [&str; 3] = ["xai-main", "xai-second", "xai-backup"];

pub(super) fn xai() -> ProviderId {
    ProviderId::new("xai-oauth")
}

pub(super) fn openai() -> ProviderId {
    ProviderId::new("openai")
}

/// What the demo saves beside the store for the next run (the fake saves its token book
/// itself, in `FAKE_TOKENS_FILE`).
#[derive(Serialize, Deserialize)]
pub(super) struct SavedFake {
    pub(super) addr: SocketAddr,
    /// The API keys' secrets by label (fake keys, minted by the first run).
    pub(super) keys: BTreeMap<String, String>,
}

/// Counters the workers and the fault task share.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) requests: AtomicU64,
    pub(super) succeeded: AtomicU64,
    pub(super) unrecovered: AtomicU64,
    pub(super) exhausted_waits: AtomicU64,
    pub(super) faults: AtomicU64,
}

/// The JSON summary (also the source of the table).
#[derive(Debug, Serialize)]
pub(super) struct Summary {
    pub(super) requests: u64,
    pub(super) succeeded: u64,
    pub(super) failed_workers: u64,
    pub(super) unrecovered_errors: u64,
    pub(super) exhausted_waits: u64,
    pub(super) api_requests: u64,
    pub(super) refreshes: u64,
    pub(super) token_endpoint_requests: u64,
    pub(super) rotations: u64,
    pub(super) cooldowns: BTreeMap<String, u64>,
    pub(super) reuse_detected: u64,
    pub(super) faults_injected: u64,
    pub(super) entries: BTreeMap<String, usize>,
    pub(super) resumed_from_store: bool,
    pub(super) workers: u64,
    pub(super) duration_s: f64,
    pub(super) data_dir: String,
}
