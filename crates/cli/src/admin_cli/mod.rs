//! `credpool admin`: inspect and steer a running service over its HTTP API, or a stopped
//! service's store directly.
//!
//! Online (`--url`, default `http://127.0.0.1:7878`, with `--token-file`): every command is
//! one request to the admin API ([`remote`]). Offline (`--data-dir DIR` or `--config FILE`):
//! the facade is started on the store, the command runs, and the facade shuts down (flushed)
//! ([`offline`]); the commands that work on the store itself — backup, restore, recover,
//! rekey ([`store_ops`]) and import ([`import`]) — start no pool. Both paths produce the same
//! JSON values, rendered by [`render`] as a table or, with `--json`, as JSON.
//!
//! **Invariants:**
//! - Secrets to add are read from an environment variable, a file or stdin — never from the
//!   command line (argv is visible to other users) — and are never printed: output shows
//!   fingerprints only.
//! - Offline, no refresh token leaves the machine unless the command is `refresh`: every
//!   other command runs without a refresher, so a grant that comes due during a short admin
//!   command is neither refreshed (spending a single-use refresh token) nor benched.
//! - Online, the token (and, for `add`, the secret) is never sent over plain `http` to a
//!   non-loopback address unless `--allow-insecure-http` is given.
//! - An environment variable name must look like one (`^[A-Za-z_][A-Za-z0-9_]*$`); a value
//!   that does not is refused without being echoed (it is likely the secret itself).
//! - A store held by a running service is reported as such, pointing at `--url`.

mod import;
mod offline;
mod remote;
mod render;
mod store_ops;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use credpool::Secret;
use serde_json::Value;

use credpool_server::api::{AddEntryRequest, SecretField};

/// The admin API's default address.
const DEFAULT_URL: &str = "http://127.0.0.1:7878";

/// Arguments of `credpool admin`.
#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// The running service's admin API.
    #[arg(long, global = true, help_heading = "Connection and output", value_name = "URL", conflicts_with_all = ["data_dir", "config"])]
    url: Option<String>,
    /// The file holding the admin token (online mode).
    #[arg(
        long,
        global = true,
        help_heading = "Connection and output",
        value_name = "PATH"
    )]
    token_file: Option<PathBuf>,
    /// Work offline on a stopped service's data directory.
    #[arg(
        long,
        global = true,
        help_heading = "Connection and output",
        value_name = "DIR"
    )]
    data_dir: Option<PathBuf>,
    /// Work offline with a service's config file (its data_dir, providers and endpoints).
    #[arg(
        long,
        global = true,
        help_heading = "Connection and output",
        value_name = "FILE"
    )]
    config: Option<PathBuf>,
    /// Offline: allow http token endpoints on loopback (tests and fakes).
    #[arg(long, global = true, help_heading = "Connection and output")]
    allow_insecure_loopback: bool,
    /// Online: allow a plain http --url on a non-loopback address, which sends the admin
    /// token (and secrets to add) unencrypted. Loopback http needs no flag.
    #[arg(long, global = true, help_heading = "Connection and output")]
    allow_insecure_http: bool,
    /// Offline: the store's master key file (base64 of 32 bytes). CREDPOOL_MASTER_KEY wins
    /// over it; without either, the config's master_key_file, else <data_dir>/master.key.
    #[arg(
        long,
        global = true,
        help_heading = "Connection and output",
        value_name = "FILE"
    )]
    master_key_file: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true, help_heading = "Connection and output")]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

/// The admin commands.
#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Entries of every pool (or one): label, fingerprint, status, cooldown, expiry,
    /// generation, uses.
    Status {
        /// Only this provider.
        provider: Option<String>,
    },
    /// The running pools.
    Providers,
    /// Adds an entry; the secret comes from an env var, a file or stdin.
    Add(Box<AddArgs>),
    /// Removes an entry (by id, label or 1-based position).
    Remove {
        /// The provider.
        provider: String,
        /// The entry: id, label or position.
        target: String,
    },
    /// Clears an entry's cooldown, model benches or death.
    Reset {
        /// The provider.
        provider: String,
        /// The entry: id, label or position.
        target: String,
    },
    /// Refreshes an OAuth entry now.
    Refresh {
        /// The provider.
        provider: String,
        /// The entry: id, label or position.
        target: String,
    },
    /// Moves an entry to a 1-based position in priority order.
    Move {
        /// The provider.
        provider: String,
        /// The entry: id, label or position.
        target: String,
        /// The new 1-based position.
        position: usize,
    },
    /// Sets a pool's selection strategy.
    Strategy {
        /// The provider.
        provider: String,
        /// fill_first, round_robin, random, least_used or weighted_random.
        strategy: String,
    },
    /// Counters of every pool (or one) and of the refresher.
    Stats {
        /// Only this provider.
        provider: Option<String>,
    },
    /// Follows the pools' events until the service stops (online only).
    Events {
        /// Only this provider.
        provider: Option<String>,
    },
    /// Writes a consistent backup of the store to FILE (mode 0600; it holds the stored
    /// secrets): from a running service, or offline from a stopped one's data dir.
    Backup {
        /// Where to write it.
        file: PathBuf,
    },
    /// Restores a backup into an empty data dir (offline only).
    Restore {
        /// The backup file.
        file: PathBuf,
    },
    /// Opens a store its manifest says is damaged, accepting the loss: missing entries are
    /// forgotten and rolled-back OAuth grants marked dead (offline only).
    Recover {
        /// Required: says that you accept losing what is missing.
        #[arg(long)]
        accept_loss: bool,
    },
    /// Re-seals every stored secret under a new master key (offline only, on a stopped
    /// service's store). A crash at any moment leaves the store under the old key or the new.
    Rekey {
        /// The new key (base64 of 32 bytes, e.g. from `openssl rand -base64 32`).
        #[arg(long, value_name = "FILE")]
        new_key_file: PathBuf,
    },
    /// Imports another runtime's credential pool (offline only, on a stopped service's
    /// store): each provider's rows all or none, idempotent; exits 2 when a row was refused.
    Import(import::ImportArgs),
}

/// `credpool admin add`.
#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// The provider.
    provider: String,
    /// The new entry's label.
    label: String,
    /// Read an API key from this environment variable (of this command).
    #[arg(long, value_name = "VAR", group = "secret")]
    api_key_env: Option<String>,
    /// Read an API key from this file.
    #[arg(long, value_name = "PATH", group = "secret")]
    api_key_file: Option<PathBuf>,
    /// Read an API key from stdin.
    #[arg(long, group = "secret")]
    api_key_stdin: bool,
    /// Read an OAuth refresh token from this environment variable.
    #[arg(long, value_name = "VAR", group = "secret")]
    refresh_token_env: Option<String>,
    /// Read an OAuth refresh token from this file.
    #[arg(long, value_name = "PATH", group = "secret")]
    refresh_token_file: Option<PathBuf>,
    /// Read an OAuth refresh token from stdin.
    #[arg(long, group = "secret")]
    refresh_token_stdin: bool,
    /// The grant's current access token, from this environment variable.
    #[arg(long, value_name = "VAR")]
    access_token_env: Option<String>,
    /// Seconds until that access token expires.
    #[arg(long, value_name = "SECS")]
    expires_in: Option<u64>,
    /// A token endpoint for this grant.
    #[arg(long, value_name = "URL")]
    token_url: Option<String>,
    /// An OAuth client id for this grant.
    #[arg(long)]
    client_id: Option<String>,
    /// Priority (lower is preferred); default last.
    #[arg(long)]
    priority: Option<u32>,
    /// Weight for weighted_random.
    #[arg(long)]
    weight: Option<u32>,
    /// The endpoint the credential is bound to.
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
}

/// Runs the subcommand.
///
/// # Errors
/// The service cannot be reached or refuses the command, the store is locked or
/// unreadable, or a secret source cannot be read.
pub fn run(args: AdminArgs) -> anyhow::Result<ExitCode> {
    // Warnings only: an offline command starts pools, whose INFO lines are noise here.
    credpool_server::init_logging_at("warn");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: AdminArgs) -> anyhow::Result<ExitCode> {
    let json = args.json;
    if args.data_dir.is_some() || args.config.is_some() {
        if args.token_file.is_some() {
            bail!("--token-file is for --url; offline mode (--data-dir, --config) needs no token");
        }
        let value = offline::run(&args).await?;
        let code = print(json, &args.command, &value)?;
        // An import that left rows behind says so in its exit code too.
        let incomplete = matches!(args.command, AdminCommand::Import(_))
            && value.get("complete").and_then(Value::as_bool) == Some(false);
        return Ok(if incomplete { ExitCode::from(2) } else { code });
    }
    if matches!(
        args.command,
        AdminCommand::Restore { .. } | AdminCommand::Recover { .. } | AdminCommand::Rekey { .. }
    ) {
        bail!("restore, recover and rekey work offline only: give --data-dir or --config");
    }
    if matches!(args.command, AdminCommand::Import(_)) {
        bail!(
            "import works offline only, on a stopped service's store: stop the service and give --data-dir or --config instead of --url"
        );
    }
    let url = args.url.clone().unwrap_or_else(|| DEFAULT_URL.to_owned());
    let Some(token_file) = &args.token_file else {
        bail!(
            "give --url and --token-file for a running service (the URL defaults to {DEFAULT_URL}), or --data-dir or --config for a stopped one"
        );
    };
    let token = credpool_server::token::read(token_file)?;
    let client = remote::Remote::new(&url, token, args.allow_insecure_http)?;
    if let AdminCommand::Events { provider } = &args.command {
        client.follow_events(provider.as_deref(), json).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let value = client.run(&args.command).await?;
    print(json, &args.command, &value)
}

fn print(json: bool, command: &AdminCommand, value: &Value) -> anyhow::Result<ExitCode> {
    let text = if json {
        let mut text = serde_json::to_string_pretty(value).context("cannot format JSON")?;
        text.push('\n');
        text
    } else {
        render::text(command, value)
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}

fn read_env(flag: &str, name: &str) -> anyhow::Result<Secret> {
    if !credpool_server::config::is_env_var_name(name) {
        bail!("{flag}: {}", credpool_server::config::NOT_AN_ENV_VAR_NAME);
    }
    let value =
        std::env::var(name).with_context(|| format!("environment variable {name} is not set"))?;
    non_empty(Secret::new(value), &format!("environment variable {name}"))
}

fn read_file(path: &std::path::Path) -> anyhow::Result<Secret> {
    let value =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    non_empty(Secret::new(value), &path.display().to_string())
}

fn read_stdin() -> anyhow::Result<Secret> {
    let mut value = String::new();
    std::io::stdin()
        .read_to_string(&mut value)
        .context("cannot read stdin")?;
    non_empty(Secret::new(value), "stdin")
}

fn non_empty(secret: Secret, source: &str) -> anyhow::Result<Secret> {
    if secret.is_empty() {
        bail!("{source} is empty");
    }
    Ok(secret)
}

impl AddArgs {
    /// Reads the secrets and builds the API request.
    fn request(&self) -> anyhow::Result<AddEntryRequest> {
        let mut request = AddEntryRequest {
            label: self.label.clone(),
            expires_in_s: self.expires_in,
            token_url: self.token_url.clone(),
            client_id: self.client_id.clone(),
            priority: self.priority,
            weight: self.weight,
            base_url: self.base_url.clone(),
            ..AddEntryRequest::default()
        };
        if let Some(name) = &self.api_key_env {
            request.api_key = Some(SecretField(read_env("--api-key-env", name)?));
        } else if let Some(path) = &self.api_key_file {
            request.api_key = Some(SecretField(read_file(path)?));
        } else if self.api_key_stdin {
            request.api_key = Some(SecretField(read_stdin()?));
        } else if let Some(name) = &self.refresh_token_env {
            request.refresh_token = Some(SecretField(read_env("--refresh-token-env", name)?));
        } else if let Some(path) = &self.refresh_token_file {
            request.refresh_token = Some(SecretField(read_file(path)?));
        } else if self.refresh_token_stdin {
            request.refresh_token = Some(SecretField(read_stdin()?));
        } else {
            bail!(
                "give the secret with --api-key-env, --api-key-file, --api-key-stdin, --refresh-token-env, --refresh-token-file or --refresh-token-stdin"
            );
        }
        if let Some(name) = &self.access_token_env {
            request.access_token = Some(SecretField(read_env("--access-token-env", name)?));
        }
        Ok(request)
    }
}
