//! `credpool demo`: the whole mission on this machine, with nothing outside it.
//!
//! credpool starts embedded on a sled store in `--data-dir`; a fake provider on loopback
//! (the test-support fake) plays xAI (OAuth grants whose access tokens live 8 s and whose
//! refresh tokens are single use) and OpenAI (API keys). Title, compression and vision
//! workers send requests through [`PoolClient::with_recovery`] while a fault task forces
//! expiries (answered by xAI's `403 unauthenticated:bad-credentials`), throttles a key with
//! `429 Retry-After`, puts a key on a billing `402`, fails the token endpoint with a `503` and
//! revokes a grant.
//!
//! **Invariants:**
//! - Nothing leaves the machine: every endpoint is `127.0.0.1`.
//! - With `--json` the last line of stdout is one JSON object; progress goes to stderr.
//! - A second run on the same data dir starts from the stored pool (grants, cooldowns,
//!   counters) and says so. The fake provider saves its token book beside the store after
//!   every redemption, before it answers (`demo-fake-tokens.json`, mode 0600; only the fake's
//!   tokens), the demo saves the fake's address and API keys (`demo-fake-provider.json`,
//!   0600), and the fake binds the same port again: the stored refresh tokens and endpoints
//!   stay valid even when a run is killed.
//! - The store is opened first, so a data dir held by another process is reported as locked.
//! - A worker is failed when its last request ended in an unrecovered error; workers are
//!   stopped by a signal and joined, so the count is exact.
//! - No secret is printed: tables show labels and fingerprints. Logs (stderr) are off unless
//!   `RUST_LOG` is set; at any level they carry no secret (`tests/secret_canary.rs` runs the
//!   demo at `trace` and looks for every token the fake issued).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use credpool::admin::{Add, Snapshot, Stats};
use credpool::{
    ClientError, Clock, CooldownConfig, Credpool, EntryView, NewEntry, PoolClient, PoolConfig,
    PoolEvent, ProviderId, ProviderRegistry, RecoveryConfig, RefresherConfig, RequestFailure,
    Secret, SledStore, StoreError, Strategy, SystemClock, api_key_entry, oauth_entry,
};
use credpool_test_support::{ApiKeyMode, FakeProvider, FakeProviderConfig, FakeState, TokenFault};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Arguments of `credpool demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Where the pool is stored; a second run on the same dir resumes from it.
    #[arg(long, value_name = "DIR", default_value = "./credpool-data")]
    data_dir: PathBuf,
    /// Workers of each kind (title, compression, vision).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: u16,
    /// How long the workers run, in seconds.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=3600))]
    duration: u64,
    /// Print one JSON summary as the last line of stdout (progress goes to stderr).
    #[arg(long)]
    json: bool,
}

/// How long the fake's access tokens live.
const ACCESS_LIFETIME: Duration = Duration::from_secs(8);
/// The demo's refresh-failure cooldown (the default is 60 s; a 20 s demo wants to see the end
/// of one).
const REFRESH_FAILED_COOLDOWN: Duration = Duration::from_secs(5);
/// The demo's refresh-loop guard (the default is 30 s, against tokens that live an hour; the
/// demo's live 8 s and are force-expired every 4 s).
const REFRESH_LOOP_GUARD: Duration = Duration::from_secs(1);
const FAKE_STATE_FILE: &str = "demo-fake-provider.json";
const FAKE_TOKENS_FILE: &str = "demo-fake-tokens.json";
/// How long stopping workers get to finish the request they are in.
const WORKER_STOP_TIMEOUT: Duration = Duration::from_secs(15);
const OPENAI_KEYS: [&str; 3] = ["openai-key-1", "openai-key-2", "openai-key-3"];
const XAI_GRANTS: [&str; 3] = ["xai-main", "xai-second", "xai-backup"];

fn xai() -> ProviderId {
    ProviderId::new("xai-oauth")
}

fn openai() -> ProviderId {
    ProviderId::new("openai")
}

/// What the demo saves beside the store for the next run (the fake saves its token book
/// itself, in `FAKE_TOKENS_FILE`).
#[derive(Serialize, Deserialize)]
struct SavedFake {
    addr: SocketAddr,
    /// The API keys' secrets by label (fake keys, minted by the first run).
    keys: BTreeMap<String, String>,
}

/// Counters the workers and the fault task share.
#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    succeeded: AtomicU64,
    unrecovered: AtomicU64,
    exhausted_waits: AtomicU64,
    faults: AtomicU64,
}

/// The JSON summary (also the source of the table).
#[derive(Debug, Serialize)]
struct Summary {
    requests: u64,
    succeeded: u64,
    failed_workers: u64,
    unrecovered_errors: u64,
    exhausted_waits: u64,
    api_requests: u64,
    refreshes: u64,
    token_endpoint_requests: u64,
    rotations: u64,
    cooldowns: BTreeMap<String, u64>,
    reuse_detected: u64,
    faults_injected: u64,
    entries: BTreeMap<String, usize>,
    resumed_from_store: bool,
    workers: u64,
    duration_s: f64,
    data_dir: String,
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    // Quiet by default (the progress display is the output); `RUST_LOG=…` logs to stderr.
    if std::env::var_os("RUST_LOG").is_some() {
        credpool_server::init_logging();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_async(args))
}

/// Where progress goes: a live bar on a terminal, plain lines otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    to_stderr: bool,
}

impl Progress {
    fn new(json: bool) -> Self {
        let to_stderr = json;
        let terminal = if to_stderr {
            std::io::stderr().is_terminal()
        } else {
            std::io::stdout().is_terminal()
        };
        let bar = terminal.then(|| {
            let target = if to_stderr {
                indicatif::ProgressDrawTarget::stderr()
            } else {
                indicatif::ProgressDrawTarget::stdout()
            };
            let bar = indicatif::ProgressBar::with_draw_target(None, target);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} [{elapsed}] {wide_msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress { bar, to_stderr }
    }

    fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None if self.to_stderr => eprintln!("{text}"),
            None => println!("{text}"),
        }
    }

    fn status(&self, text: String) {
        match &self.bar {
            Some(bar) => bar.set_message(text),
            None => self.line(&text),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

async fn run_async(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let progress = Progress::new(args.json);
    // The store first: a data dir another process holds is reported as locked.
    let dir = args.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || SledStore::open(&dir))
        .await
        .context("opening the store")?
        .map_err(|error| match error {
            StoreError::Locked { path } => anyhow::anyhow!(
                "store at {path} is locked: another process holds it (another demo, or a \
                 `credpool serve` on this data dir?)"
            ),
            other => anyhow::Error::new(other)
                .context(format!("opening the store in {}", args.data_dir.display())),
        })?;
    let state_path = args.data_dir.join(FAKE_STATE_FILE);
    let tokens_path = args.data_dir.join(FAKE_TOKENS_FILE);
    let saved = read_json::<SavedFake>(&state_path)?;
    let tokens = read_json::<FakeState>(&tokens_path)?;
    let fake_saved = saved.is_some() && tokens.is_some();

    // Then the fake: the stored entries point at its address.
    let fake = FakeProvider::try_start(FakeProviderConfig {
        access_token_lifetime: ACCESS_LIFETIME,
        bind: saved.as_ref().map(|s| s.addr),
        restore: tokens,
        persist: Some(tokens_path),
        ..FakeProviderConfig::default()
    })
    .await
    .with_context(|| match &saved {
        Some(saved) => format!(
            "the demo's fake provider could not bind {} again (in use?); the stored pool \
             points at it. Free the port, or run with another --data-dir",
            saved.addr
        ),
        None => "binding the demo's fake provider on 127.0.0.1".to_owned(),
    })?;

    let pool = Credpool::builder()
        .store(Arc::new(store))
        .providers(demo_providers(&fake))
        .pool(xai(), demo_pool_config())
        .pool(openai(), demo_pool_config())
        .refresher(RefresherConfig {
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(5),
            http_timeout: Duration::from_secs(5),
            ..RefresherConfig::default()
        })
        .allow_insecure_loopback(true)
        .recovery(RecoveryConfig {
            transient_backoff: Duration::from_millis(100),
            ..RecoveryConfig::default()
        })
        .start()
        .await
        .with_context(|| format!("opening the pool in {}", args.data_dir.display()))?;

    let resumed = pool.resumed_from_store();
    if resumed && !fake_saved {
        let _ = pool.shutdown().await;
        bail!(
            "{} holds a credential pool without the demo's fake-provider state \
             ({FAKE_STATE_FILE}, {FAKE_TOKENS_FILE}); run the demo with another --data-dir",
            args.data_dir.display()
        );
    }
    let keys = match (&saved, resumed) {
        (Some(saved), true) => {
            let entries = entry_counts(&pool).await;
            progress.line(&format!(
                "resumed from store {}: {} (grants, cooldowns and counters as the last run left \
                 them)",
                args.data_dir.display(),
                format_counts(&entries)
            ));
            saved.keys.clone()
        }
        _ => {
            let keys = seed(&pool, &fake).await?;
            progress.line(&format!(
                "new pool in {}: {} API keys (openai), {} OAuth grants (xai-oauth)",
                args.data_dir.display(),
                OPENAI_KEYS.len(),
                XAI_GRANTS.len()
            ));
            keys
        }
    };
    // Saved now, so a run that is killed can still be resumed (the fake saves every
    // rotation itself).
    save_fake(&state_path, &fake, &keys)?;
    fake.persist_state();
    progress.line(&format!(
        "fake xAI and OpenAI on http://{}; {} workers of each kind for {} s",
        fake.addr(),
        args.workers,
        args.duration
    ));
    progress.line(&format!(
        "demo timings: access tokens live {} s and older ones are expired early every 4 s; \
         refresh-loop guard {} s; refresh-failure cooldown {} s (defaults: 30 s, 60 s)",
        ACCESS_LIFETIME.as_secs(),
        REFRESH_LOOP_GUARD.as_secs(),
        REFRESH_FAILED_COOLDOWN.as_secs()
    ));

    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.duration);
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let tally = Arc::new(Tally::default());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("building the HTTP client")?;
    let fake = Arc::new(fake);

    let watcher = spawn_event_lines(&pool, &progress).await;
    let faults = tokio::spawn(inject_faults(
        Arc::clone(&fake),
        keys.clone(),
        Arc::clone(&tally),
        Duration::from_secs(args.duration),
    ));
    let mut workers = Vec::new();
    for kind in ["title", "compression", "vision"] {
        for n in 0..args.workers {
            workers.push(tokio::spawn(worker(
                format!("{kind}-{n}"),
                if kind == "compression" {
                    openai()
                } else {
                    xai()
                },
                pool.client(),
                http.clone(),
                Arc::clone(&tally),
                deadline,
                stopping.clone(),
            )));
        }
    }

    // Progress until the deadline or Ctrl-C.
    // A live display redraws often; plain lines come every 2 s.
    let mut ticker = tokio::time::interval(if progress.bar.is_some() {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(2)
    });
    ticker.tick().await;
    // One Ctrl-C future for the whole run, so a signal during a status update is not lost.
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => break,
            _ = &mut interrupted => {
                progress.line("interrupted: stopping the workers and flushing the store");
                break;
            }
            _ = ticker.tick() => {
                progress.status(status_line(&pool, &fake, &tally, started).await);
            }
        }
    }
    faults.abort();
    let _ = stop.send(true);
    let mut failed_workers = 0u64;
    for mut handle in workers {
        match tokio::time::timeout(WORKER_STOP_TIMEOUT, &mut handle).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false) | Err(_)) => failed_workers += 1,
            Err(_) => {
                // Stuck in a request: that is a failed worker too.
                handle.abort();
                failed_workers += 1;
            }
        }
    }
    watcher.abort();
    progress.finish();

    let summary = summarize(
        &pool,
        &fake,
        &tally,
        failed_workers,
        resumed,
        &args,
        started,
    )
    .await;
    let views = all_entries(&pool).await;
    pool.shutdown().await.context("flushing the store")?;
    save_fake(&state_path, &fake, &keys)?;
    fake.persist_state();

    if args.json {
        print_table(&mut std::io::stderr(), &summary, &views);
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print_table(&mut std::io::stdout(), &summary, &views);
        println!(
            "Run it again to resume from {}; inspect it with `credpool admin --data-dir {} status`.",
            args.data_dir.display(),
            args.data_dir.display()
        );
    }
    Ok(if failed_workers == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The built-in providers with `xai-oauth`'s token endpoint at the fake.
fn demo_providers(fake: &FakeProvider) -> ProviderRegistry {
    let mut providers = ProviderRegistry::builtin();
    // xai-oauth is a built-in OAuth provider: the override cannot fail.
    let _ = providers.set_token_url(&xai(), &fake.token_url());
    providers
}

/// Round robin (so every entry meets the faults) with the demo's shortened timings.
fn demo_pool_config() -> PoolConfig {
    PoolConfig {
        strategy: Strategy::RoundRobin,
        cooldown: CooldownConfig {
            refresh_failed: REFRESH_FAILED_COOLDOWN,
            ..CooldownConfig::default()
        },
        refresh_loop_guard: REFRESH_LOOP_GUARD,
        ..PoolConfig::default()
    }
}

/// Adds the demo's keys and grants to a new pool; returns the keys by label.
async fn seed(pool: &Credpool, fake: &FakeProvider) -> anyhow::Result<BTreeMap<String, String>> {
    let admin = pool.admin();
    let mut keys = BTreeMap::new();
    for label in OPENAI_KEYS {
        let secret = format!("sk-demo-{:032x}", rand::rng().random::<u128>());
        fake.add_api_key(&secret, ApiKeyMode::Ok);
        let entry = NewEntry {
            base_url: Some(fake.api_url()),
            ..api_key_entry(label, Secret::new(secret.clone()))
        };
        admin.run(&openai(), Add(entry)).await?;
        keys.insert(label.to_owned(), secret);
    }
    for label in XAI_GRANTS {
        let (access, refresh) = fake.grant(label);
        let expires_at = SystemClock.now().plus(ACCESS_LIFETIME);
        let entry = NewEntry {
            base_url: Some(fake.api_url()),
            ..oauth_entry(label, access, refresh, Some(expires_at))
        };
        admin.run(&xai(), Add(entry)).await?;
    }
    Ok(keys)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("reading {}", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes the fake's address and keys atomically with mode 0600.
fn save_fake(
    path: &Path,
    fake: &FakeProvider,
    keys: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let saved = SavedFake {
        addr: fake.addr(),
        keys: keys.clone(),
    };
    credpool_server::private_file::write(path, &serde_json::to_vec(&saved)?)
}

/// One worker: a request every 150–400 ms until the deadline. Returns whether its last
/// request succeeded (a worker that ends on an unrecovered error is a failed worker).
async fn worker(
    name: String,
    provider: ProviderId,
    client: PoolClient,
    http: reqwest::Client,
    tally: Arc<Tally>,
    deadline: tokio::time::Instant,
    stopping: tokio::sync::watch::Receiver<bool>,
) -> bool {
    let mut last_ok = true;
    let running = || tokio::time::Instant::now() < deadline && !*stopping.borrow();
    while running() {
        tally.requests.fetch_add(1, Ordering::Relaxed);
        last_ok = loop {
            let result = client
                .with_recovery(&provider, |credential| {
                    let http = http.clone();
                    let name = name.clone();
                    async move { chat(&http, &name, credential).await }
                })
                .await;
            match result {
                Ok(()) => {
                    tally.succeeded.fetch_add(1, Ordering::Relaxed);
                    break true;
                }
                // Nothing usable now: wait for the earliest entry, as a runtime would.
                Err(ClientError::Exhausted {
                    next_available_at, ..
                }) => {
                    tally.exhausted_waits.fetch_add(1, Ordering::Relaxed);
                    let wait = next_available_at
                        .map(|at| at.since(SystemClock.now()))
                        .unwrap_or(Duration::from_secs(1))
                        .clamp(Duration::from_millis(100), Duration::from_secs(5));
                    if tokio::time::Instant::now() + wait >= deadline || !running() {
                        tally.unrecovered.fetch_add(1, Ordering::Relaxed);
                        break false;
                    }
                    tokio::time::sleep(wait).await;
                }
                Err(error) => {
                    tracing::warn!(worker = %name, %error, "request failed");
                    tally.unrecovered.fetch_add(1, Ordering::Relaxed);
                    break false;
                }
            }
        };
        let pause = rand::rng().random_range(150..400);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    last_ok
}

/// One chat request with `credential` to its endpoint.
async fn chat(
    http: &reqwest::Client,
    worker: &str,
    credential: credpool::Credential,
) -> Result<(), RequestFailure> {
    let base = credential.base_url().unwrap_or_default().to_owned();
    let (name, value) = credential
        .header()
        .map_err(|error| RequestFailure::transport(error.to_string()))?;
    let response = http
        .post(format!("{base}/chat/completions"))
        .header(name, value)
        .json(&serde_json::json!({
            "model": "demo-model",
            "messages": [{"role": "user", "content": format!("{worker} task")}],
        }))
        .send()
        .await
        .map_err(|error| RequestFailure::from_reqwest_error(&error))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(RequestFailure::from_response(response).await)
    }
}

/// The fault schedule, scaled to the run: early expiries from 1.6 s on and then every 4 s,
/// a key throttled for 1 s every 5 s, a billing 402 at 40 %, a token-endpoint 503 at 30 %,
/// a revoked grant at 60 %.
async fn inject_faults(
    fake: Arc<FakeProvider>,
    keys: BTreeMap<String, String>,
    tally: Arc<Tally>,
    duration: Duration,
) {
    let throttled = keys.get(OPENAI_KEYS[1]).cloned().unwrap_or_default();
    let billed = keys.get(OPENAI_KEYS[2]).cloned().unwrap_or_default();
    let started = tokio::time::Instant::now();
    let at = |fraction: f64| started + duration.mul_f64(fraction);
    let mut next_expiry = started + Duration::from_millis(1600);
    let mut next_throttle = started + Duration::from_secs(2);
    let mut plan = vec![
        (at(0.3), Fault::TokenEndpoint503),
        (at(0.4), Fault::Billing),
        (at(0.6), Fault::Revoke),
    ];
    loop {
        let now = tokio::time::Instant::now();
        if now >= next_expiry {
            // Tokens younger than the loop guard are spared: a token rejected right after its
            // refresh is what the guard benches (a refresh loop), not an expiry.
            fake.expire_access_tokens_older_than(REFRESH_LOOP_GUARD + Duration::from_millis(500));
            tally.faults.fetch_add(1, Ordering::Relaxed);
            next_expiry += Duration::from_secs(4);
        }
        if now >= next_throttle {
            fake.set_api_key_mode(
                &throttled,
                ApiKeyMode::RateLimited {
                    retry_after_secs: 2,
                },
            );
            tally.faults.fetch_add(1, Ordering::Relaxed);
            let (fake, throttled) = (Arc::clone(&fake), throttled.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                fake.set_api_key_mode(&throttled, ApiKeyMode::Ok);
            });
            next_throttle += Duration::from_secs(5);
        }
        plan.retain(|(when, fault)| {
            if now < *when {
                return true;
            }
            match fault {
                Fault::TokenEndpoint503 => fake.push_fault(TokenFault::Status503),
                Fault::Billing => {
                    fake.set_api_key_mode(&billed, ApiKeyMode::Billing402);
                }
                Fault::Revoke => fake.revoke(XAI_GRANTS[2]),
            }
            tally.faults.fetch_add(1, Ordering::Relaxed);
            false
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

enum Fault {
    TokenEndpoint503,
    Billing,
    Revoke,
}

/// Prints notable pool events (deaths, failed refreshes, cooldowns) as lines.
async fn spawn_event_lines(pool: &Credpool, progress: &Progress) -> tokio::task::JoinHandle<()> {
    let admin = pool.admin();
    let mut streams = Vec::new();
    for provider in [xai(), openai()] {
        if let Ok(stream) = admin.subscribe(&provider, 256, None).await {
            streams.push(stream);
        }
    }
    let labels = label_map(pool).await;
    let to_stderr = progress.to_stderr;
    let bar = progress.bar.clone();
    tokio::spawn(async move {
        let (sender, mut receiver) = tokio::sync::mpsc::channel(256);
        for mut stream in streams {
            let sender = sender.clone();
            tokio::spawn(async move {
                while let Some(event) = stream.recv().await {
                    if sender.send(event).await.is_err() {
                        break;
                    }
                }
            });
        }
        drop(sender);
        while let Some(event) = receiver.recv().await {
            let Some(text) = describe(&event.event, &labels) else {
                continue;
            };
            match &bar {
                Some(bar) => bar.println(&text),
                None if to_stderr => eprintln!("{text}"),
                None => println!("{text}"),
            }
        }
    })
}

async fn label_map(pool: &Credpool) -> BTreeMap<String, String> {
    all_entries(pool)
        .await
        .into_iter()
        .map(|(_, view)| (view.id.to_string(), view.label))
        .collect()
}

fn describe(event: &PoolEvent, labels: &BTreeMap<String, String>) -> Option<String> {
    let name = |entry: &dyn std::fmt::Display| {
        let id = entry.to_string();
        labels.get(&id).cloned().unwrap_or(id)
    };
    match event {
        PoolEvent::CooledDown {
            provider,
            entry,
            until,
            cause,
            ..
        } => Some(format!(
            "  {provider}/{}: cooling down for {} s ({})",
            name(entry),
            until.since(SystemClock.now()).as_secs(),
            serde_json::to_value(cause)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("{cause:?}"))
        )),
        PoolEvent::Dead {
            provider,
            entry,
            reason,
        } => Some(format!("  {provider}/{}: dead ({reason})", name(entry))),
        PoolEvent::Refreshed {
            provider,
            entry,
            generation,
        } => Some(format!(
            "  {provider}/{}: tokens rotated and stored (generation {})",
            name(entry),
            generation.0
        )),
        PoolEvent::RefreshFailed {
            provider,
            entry,
            reason,
        } => Some(format!(
            "  {provider}/{}: refresh failed ({reason})",
            name(entry)
        )),
        _ => None,
    }
}

async fn all_entries(pool: &Credpool) -> Vec<(ProviderId, EntryView)> {
    let admin = pool.admin();
    let mut out = Vec::new();
    for provider in [xai(), openai()] {
        if let Ok(snapshot) = admin.run(&provider, Snapshot).await {
            out.extend(snapshot.entries.into_iter().map(|e| (provider.clone(), e)));
        }
    }
    out
}

async fn entry_counts(pool: &Credpool) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for (_, view) in all_entries(pool).await {
        *counts.entry(view.status.to_string()).or_default() += 1;
    }
    counts
}

fn format_counts(counts: &BTreeMap<String, usize>) -> String {
    let parts: Vec<String> = counts
        .iter()
        .map(|(status, n)| format!("{n} {status}"))
        .collect();
    format!(
        "{} entries ({})",
        counts.values().sum::<usize>(),
        parts.join(", ")
    )
}

async fn status_line(
    pool: &Credpool,
    fake: &FakeProvider,
    tally: &Tally,
    started: Instant,
) -> String {
    let (mut refreshes, mut rotations, mut cooldowns) = (0, 0, 0);
    for provider in [xai(), openai()] {
        if let Ok(stats) = pool.admin().run(&provider, Stats).await {
            refreshes += stats.refreshes_succeeded;
            rotations += stats.rotations;
            cooldowns += stats.cooldowns.values().sum::<u64>();
        }
    }
    format!(
        "t={:>3}s requests {} ok {} | refreshes {} (token endpoint {}) | rotations {} | \
         cooldowns {} | faults {}",
        started.elapsed().as_secs(),
        tally.requests.load(Ordering::Relaxed),
        tally.succeeded.load(Ordering::Relaxed),
        refreshes,
        fake.token_requests(),
        rotations,
        cooldowns,
        tally.faults.load(Ordering::Relaxed),
    )
}

async fn summarize(
    pool: &Credpool,
    fake: &FakeProvider,
    tally: &Tally,
    failed_workers: u64,
    resumed: bool,
    args: &DemoArgs,
    started: Instant,
) -> Summary {
    let (mut refreshes, mut rotations) = (0, 0);
    let mut cooldowns = BTreeMap::new();
    for provider in [xai(), openai()] {
        if let Ok(stats) = pool.admin().run(&provider, Stats).await {
            refreshes += stats.refreshes_succeeded;
            rotations += stats.rotations;
            for (cause, n) in stats.cooldowns {
                *cooldowns.entry(cause).or_default() += n;
            }
        }
    }
    Summary {
        requests: tally.requests.load(Ordering::Relaxed),
        succeeded: tally.succeeded.load(Ordering::Relaxed),
        failed_workers,
        unrecovered_errors: tally.unrecovered.load(Ordering::Relaxed),
        exhausted_waits: tally.exhausted_waits.load(Ordering::Relaxed),
        api_requests: fake.api_requests(),
        refreshes,
        token_endpoint_requests: fake.token_requests(),
        rotations,
        cooldowns,
        reuse_detected: fake.reuse_detections(),
        faults_injected: tally.faults.load(Ordering::Relaxed),
        entries: entry_counts(pool).await,
        resumed_from_store: resumed,
        workers: u64::from(args.workers) * 3,
        duration_s: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        data_dir: args.data_dir.display().to_string(),
    }
}

fn print_table(out: &mut dyn Write, summary: &Summary, views: &[(ProviderId, EntryView)]) {
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<10} {:<13} {:<25} {:<13} {:<22} {:>4} {:>6}",
        "provider", "label", "fingerprint", "status", "why / remaining", "gen", "uses"
    );
    for (provider, view) in views {
        let cooldown = match (&view.dead_reason, &view.cooldown_cause) {
            (Some(reason), _) => reason.clone(),
            (None, Some(cause)) => format!(
                "{cause} {} s",
                view.cooldown_remaining_s.unwrap_or_default()
            ),
            (None, None) => "-".to_owned(),
        };
        let _ = writeln!(
            out,
            "{:<10} {:<13} {:<25} {:<13} {:<22} {:>4} {:>6}",
            provider.to_string(),
            view.label,
            view.fingerprint.to_string(),
            view.status,
            cooldown,
            view.generation.0,
            view.usage.selections
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "requests {} · succeeded {} · failed workers {} of {} · refreshes {} · token-endpoint \
         requests {} · rotations {} · reuse detected {} · {}",
        summary.requests,
        summary.succeeded,
        summary.failed_workers,
        summary.workers,
        summary.refreshes,
        summary.token_endpoint_requests,
        summary.rotations,
        summary.reuse_detected,
        if summary.resumed_from_store {
            "resumed from store"
        } else {
            "new store"
        }
    );
}
