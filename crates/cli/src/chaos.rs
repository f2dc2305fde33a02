//! `credpool chaos`: kill -9 during rotations, then check every grant.
//!
//! The harness runs the fake provider in the harness process (access tokens living 2 s, single-use
//! refresh tokens, no reuse grace: a replayed refresh token revokes its grant), writes a
//! `credpool serve` config whose `xai-oauth` grants point at it, and then, `--kills` times:
//! starts `credpool serve` on the same data dir, waits until it listens, lets it rotate tokens
//! for a random 100–900 ms, and kills it with SIGKILL. Finally it starts the service once
//! more, asks for one refresh of every grant through the admin API, waits (bounded) until
//! every grant has a newer generation or is dead and no exchange is in flight, reads the
//! snapshot, stops the service with SIGTERM and reports.
//!
//! **Invariants checked** (the run fails when one does not hold):
//! - `entries_lost == 0`: every configured grant is still in the store;
//! - `quarantined == 0`: no record was left undecodable;
//! - `reuse_detected == 0`: the provider saw no replayed refresh token except the single
//!   documented retry of a refresh the kill interrupted between the provider's rotation and
//!   our commit. Such a grant is counted in `grants_dead_interrupted` only when both sides
//!   agree — the entry is `dead` with `refresh_interrupted` and the provider revoked that
//!   grant for reuse — never hidden; every other detection counts as `reuse_detected`;
//! - `grants_dead_other == 0`: every other grant works: status `ok`, alive at the provider,
//!   and the refresh asked for after the last restart raised its generation;
//! - `grants_working >= 1` and the last service exits 0 on SIGTERM.
//!
//! Bounded: `--kills` cycles and `--max-seconds` in all, whichever ends first.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use credpool_test_support::{FakeProvider, FakeProviderConfig};
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Arguments of `credpool chaos`.
#[derive(Debug, clap::Args)]
pub struct ChaosArgs {
    /// How many times the service is killed with SIGKILL.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    kills: u32,
    /// OAuth grants in the pool.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    grants: u32,
    /// Upper bound on the whole run, in seconds (the kill loop stops early when reached).
    #[arg(long, default_value_t = 600)]
    max_seconds: u64,
    /// Seed of the kill timing (random when absent; printed either way).
    #[arg(long)]
    seed: Option<u64>,
    /// Keep the data dir, config and logs here instead of a temporary directory.
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// Print one JSON summary as the last line of stdout.
    #[arg(long)]
    json: bool,
    /// The credpool binary to run as the service (default: this one).
    #[arg(long, hide = true)]
    binary: Option<PathBuf>,
}

/// The run's result.
#[derive(Debug, Serialize)]
struct ChaosReport {
    kills: u32,
    grants: u32,
    grants_working: u32,
    grants_dead_interrupted: u32,
    grants_dead_other: u32,
    reuse_detected: u64,
    reuse_detections_total: u64,
    entries_lost: u32,
    quarantined: u64,
    rotations: u64,
    token_requests: u64,
    clean_exit: bool,
    seed: u64,
    seconds: f64,
}

impl ChaosReport {
    fn passed(&self) -> bool {
        self.reuse_detected == 0
            && self.grants_working > 0
            && self.entries_lost == 0
            && self.quarantined == 0
            && self.grants_dead_other == 0
            && self.clean_exit
    }
}

const PROVIDER: &str = "xai-oauth";
const ACCESS_LIFETIME: Duration = Duration::from_secs(2);
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the last start gets for its refreshes to land.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the harness.
pub fn run(args: ChaosArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = runtime.block_on(run_async(&args))?;
    if !args.json {
        println!(
            "kills {} · grants {} · working {} · dead (refresh_interrupted) {} · dead (other) {} \
             · reuse detected {} (of {} detections) · entries lost {} · quarantined {} · \
             rotations {} · clean exit {} · seed {} · {:.1} s",
            report.kills,
            report.grants,
            report.grants_working,
            report.grants_dead_interrupted,
            report.grants_dead_other,
            report.reuse_detected,
            report.reuse_detections_total,
            report.entries_lost,
            report.quarantined,
            report.rotations,
            report.clean_exit,
            report.seed,
            report.seconds
        );
    } else {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn run_async(args: &ChaosArgs) -> anyhow::Result<ChaosReport> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.max_seconds);
    let seed = args.seed.unwrap_or_else(|| rand::rng().random());
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let temp;
    let work = match &args.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            dir.clone()
        }
        None => {
            temp = tempfile::tempdir().context("creating a temporary directory")?;
            temp.path().to_path_buf()
        }
    };
    let binary = match &args.binary {
        Some(path) => path.clone(),
        None => std::env::current_exe().context("finding the credpool binary")?,
    };

    let fake = FakeProvider::try_start(FakeProviderConfig {
        access_token_lifetime: ACCESS_LIFETIME,
        ..FakeProviderConfig::default()
    })
    .await
    .context("starting the fake provider on loopback")?;
    let labels: Vec<String> = (0..args.grants).map(|n| format!("grant-{n}")).collect();
    for label in &labels {
        let (_, refresh) = fake.grant(label);
        credpool_server::private_file::write(
            &work.join(format!("{label}.rt")),
            refresh.expose().as_bytes(),
        )?;
    }
    let config = work.join("credpool.toml");
    credpool_server::private_file::write(&config, config_text(&fake, &labels).as_bytes())?;
    let log = work.join("serve.log");
    eprintln!(
        "chaos: {} kills of `credpool serve` over {} grants, seed {seed}, work dir {}",
        args.kills,
        args.grants,
        work.display()
    );

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")?;
    let mut kills = 0;
    while kills < args.kills && Instant::now() < deadline {
        let (mut child, base) = start_service(&binary, &config, &log).await?;
        if kills == 0 {
            // Seeded grants hold only a refresh token: get every one going.
            let token = admin_token(&work)?;
            for label in &labels {
                let _ = refresh_entry(&http, &base, &token, label).await;
            }
        }
        let run_for = Duration::from_millis(rng.random_range(100..900));
        tokio::time::sleep(run_for).await;
        child.start_kill().context("sending SIGKILL")?;
        let _ = child.wait().await;
        kills += 1;
        if kills % 20 == 0 {
            eprintln!(
                "chaos: {kills} kills, {} rotations, {} reuse detections",
                fake.refreshes(),
                fake.reuse_detections()
            );
        }
    }

    // The last start: one refresh of every grant; wait until each has a newer generation or
    // is dead and nothing is in flight (an interrupted refresh's retry may still be running
    // when the service starts listening); then the snapshot.
    let (mut child, base) = start_service(&binary, &config, &log).await?;
    let token = admin_token(&work)?;
    let before = generations(&snapshot(&http, &base, &token).await?);
    for label in &labels {
        if let Err(error) = refresh_entry(&http, &base, &token, label).await {
            eprintln!("chaos: the refresh of {label} was not accepted: {error:#}");
        }
    }
    let settle_deadline = Instant::now() + SETTLE_TIMEOUT;
    let snapshot = loop {
        let current = snapshot(&http, &base, &token).await?;
        let now = generations(&current);
        let advanced = labels
            .iter()
            .all(|label| match (now.get(label), before.get(label)) {
                (Some((_, status)), _) if status == "dead" => true,
                (Some((generation, _)), Some((old, _))) => generation > old,
                (Some(_), None) => true,
                (None, _) => true,
            });
        if (advanced && in_flight(&http, &base, &token).await? == 0)
            || Instant::now() >= settle_deadline
        {
            break current;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let clean_exit = stop_gracefully(&mut child).await;

    let entries = snapshot
        .get("entries")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let quarantined = snapshot
        .get("quarantined")
        .and_then(Value::as_array)
        .map_or(0, |q| q.len() as u64);
    let (mut working, mut interrupted, mut other, mut found) = (0u32, 0u32, 0u32, 0u32);
    for label in &labels {
        let Some(entry) = entries
            .iter()
            .find(|e| e.get("label").and_then(Value::as_str) == Some(label.as_str()))
        else {
            continue;
        };
        found += 1;
        let status = entry.get("status").and_then(Value::as_str).unwrap_or("");
        let reason = entry.get("dead_reason").and_then(Value::as_str);
        let generation = entry.get("generation").and_then(Value::as_u64).unwrap_or(0);
        let refreshed = before.get(label).is_some_and(|(old, _)| generation > *old);
        let revoked = fake.is_revoked(label);
        if status == "dead" && reason == Some("refresh_interrupted") && revoked {
            interrupted += 1;
        } else if status == "ok" && refreshed && !revoked {
            working += 1;
        } else {
            eprintln!("chaos: {label} does not work: {entry}");
            other += 1;
        }
    }
    let detections = fake.reuse_detections();
    Ok(ChaosReport {
        kills,
        grants: args.grants,
        grants_working: working,
        grants_dead_interrupted: interrupted,
        grants_dead_other: other,
        reuse_detected: detections.saturating_sub(u64::from(interrupted)),
        reuse_detections_total: detections,
        entries_lost: args.grants - found,
        quarantined,
        rotations: fake.refreshes(),
        token_requests: fake.token_requests(),
        clean_exit,
        seed,
        seconds: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    })
}

fn config_text(fake: &FakeProvider, labels: &[String]) -> String {
    let mut text = format!(
        "# Written by `credpool chaos`.\n\
         data_dir = \"data\"\n\
         allow_insecure_loopback = true\n\n\
         [admin]\n\
         listen = \"127.0.0.1:0\"\n\
         token_file = \"admin.token\"\n\n\
         [refresher]\n\
         backoff_initial_s = 1\n\
         backoff_max_s = 2\n\
         http_timeout_s = 5\n\n\
         [[providers]]\n\
         id = \"{PROVIDER}\"\n\
         strategy = \"round_robin\"\n\
         token_url = \"{}\"\n\
         base_url = \"{}\"\n",
        fake.token_url(),
        fake.api_url()
    );
    for label in labels {
        text.push_str(&format!(
            "\n[[providers.entries]]\nlabel = \"{label}\"\nrefresh_token_file = \"{label}.rt\"\n"
        ));
    }
    text
}

fn admin_token(work: &Path) -> anyhow::Result<String> {
    let token = credpool_server::token::read(&work.join("admin.token"))?;
    Ok(token.expose().trim().to_owned())
}

/// Starts `credpool serve` and waits for its "listening on" line; returns the child and the
/// admin API's base URL.
async fn start_service(
    binary: &Path,
    config: &Path,
    log: &Path,
) -> anyhow::Result<(Child, String)> {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let mut child = Command::new(binary)
        .arg("serve")
        .arg("--config")
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {} serve", binary.display()))?;
    let stdout = child
        .stdout
        .take()
        .context("the service's stdout is not piped")?;
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(READY_TIMEOUT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(url) = line.split("listening on ").nth(1) {
                return Some(url.trim().to_owned());
            }
        }
        None
    })
    .await;
    match ready {
        Ok(Some(url)) => {
            // Keep draining stdout so the service never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            Ok((child, url))
        }
        _ => {
            let _ = child.start_kill();
            let status = child.wait().await.ok();
            bail!(
                "`credpool serve` did not start (exit {status:?}); see {}",
                log.display()
            )
        }
    }
}

async fn snapshot(http: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<Value> {
    http.get(format!("{base}/v1/providers/{PROVIDER}/entries"))
        .bearer_auth(token)
        .send()
        .await
        .context("reading the snapshot")?
        .error_for_status()
        .context("reading the snapshot")?
        .json()
        .await
        .context("reading the snapshot")
}

/// Each entry's generation and status, by label.
fn generations(snapshot: &Value) -> std::collections::HashMap<String, (u64, String)> {
    snapshot
        .get("entries")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            Some((
                entry.get("label")?.as_str()?.to_owned(),
                (
                    entry.get("generation")?.as_u64()?,
                    entry.get("status")?.as_str()?.to_owned(),
                ),
            ))
        })
        .collect()
}

/// The refresher's exchanges in flight, from `GET /v1/stats`.
async fn in_flight(http: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<u64> {
    let stats: Value = http
        .get(format!("{base}/v1/stats"))
        .bearer_auth(token)
        .send()
        .await
        .context("reading the stats")?
        .error_for_status()
        .context("reading the stats")?
        .json()
        .await
        .context("reading the stats")?;
    Ok(stats
        .pointer("/refresher/in_flight")
        .and_then(Value::as_u64)
        .unwrap_or(0))
}

async fn refresh_entry(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    label: &str,
) -> anyhow::Result<Value> {
    Ok(http
        .post(format!(
            "{base}/v1/providers/{PROVIDER}/entries/{label}/refresh"
        ))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// SIGTERM, then waits (bounded) for exit 0.
async fn stop_gracefully(child: &mut Child) -> bool {
    let Some(pid) = child.id() else {
        return false;
    };
    let sent = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .is_ok_and(|status| status.success());
    if !sent {
        let _ = child.start_kill();
        return false;
    }
    match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
        Ok(Ok(status)) => status.success(),
        _ => {
            let _ = child.start_kill();
            false
        }
    }
}
