//! `credpool classify`: explains what credpool would do with a provider's response.
//!
//! Single mode classifies one response given by flags (body from `--body`, `--body-file` or
//! stdin) and prints a short block, or one JSON object with `--json`. Batch mode (`--batch`)
//! reads JSON lines from stdin and writes exactly one JSON line per input line, in order.
//!
//! **Invariants:** a bad batch line yields `{"error": "…"}` for that line and the batch goes
//! on; nothing here panics on input; only a failing stdin or stdout makes the command fail.
//! Output never carries a secret: messages and explanations come masked from
//! [`credpool_core::classify`].

use std::borrow::Cow;
use std::io::{self, BufRead, BufWriter, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use credpool_core::classify::{ClassifyInput, classify, explain};
use credpool_core::cooldown::{CooldownConfig, default_cooldown_secs};
use credpool_core::{Classification, Clock, CredentialKind, SystemClock, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Arguments of `credpool classify`.
#[derive(Debug, clap::Args)]
pub struct ClassifyArgs {
    /// The HTTP status; leave out for a transport failure or a bare error message.
    #[arg(long)]
    status: Option<u16>,
    /// A response header as `name: value`; repeat for several.
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// The response body (otherwise `--body-file`, otherwise stdin when it is not a terminal).
    #[arg(long, conflicts_with = "body_file")]
    body: Option<String>,
    /// A file holding the response body.
    #[arg(long, value_name = "PATH")]
    body_file: Option<PathBuf>,
    /// The provider the request went to (`xai-oauth`, `openai`, …); unknown names are generic.
    #[arg(long)]
    provider: Option<String>,
    /// The kind of credential used; wins over what the provider usually issues.
    #[arg(long, value_enum)]
    entry_kind: Option<EntryKindArg>,
    /// Print one JSON object instead of a text block.
    #[arg(long)]
    json: bool,
    /// Read JSON lines from stdin, write one JSON result per line.
    #[arg(
        long,
        conflicts_with_all = ["status", "headers", "body", "body_file", "provider", "entry_kind"]
    )]
    batch: bool,
    /// The current time (RFC 3339 or epoch seconds), for reproducible output.
    #[arg(long, hide = true)]
    now: Option<String>,
}

/// The credential kind as typed on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum EntryKindArg {
    /// An OAuth grant.
    #[value(name = "oauth")]
    OAuth,
    /// A static API key.
    ApiKey,
}

impl From<EntryKindArg> for CredentialKind {
    fn from(kind: EntryKindArg) -> Self {
        match kind {
            EntryKindArg::OAuth => CredentialKind::OAuth,
            EntryKindArg::ApiKey => CredentialKind::ApiKey,
        }
    }
}

/// One result, as printed by `--json` and `--batch`.
#[derive(Debug, Serialize)]
struct Verdict<'a> {
    class: &'static str,
    kind: &'static str,
    terminal: bool,
    reason: Option<&'a str>,
    reset_at: Option<String>,
    cooldown_s: Option<u64>,
    explanation: String,
}

impl<'a> Verdict<'a> {
    fn new(classification: &'a Classification, now: Timestamp) -> Self {
        Verdict {
            class: classification.kind.class().as_str(),
            kind: classification.kind.name(),
            terminal: classification.kind.is_terminal(),
            reason: classification.reason.as_deref(),
            reset_at: classification.reset_at.map(Timestamp::to_rfc3339),
            cooldown_s: default_cooldown_secs(classification, now),
            explanation: explain(classification),
        }
    }
}

/// One line of `--batch` input.
#[derive(Debug, Deserialize)]
struct BatchLine<'a> {
    #[serde(default, borrow)]
    provider: Option<Cow<'a, str>>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    headers: Option<serde_json::Map<String, Value>>,
    #[serde(default, borrow)]
    body: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    entry_kind: Option<Cow<'a, str>>,
}

/// Runs `credpool classify`.
pub fn run(args: ClassifyArgs) -> anyhow::Result<ExitCode> {
    let now = match &args.now {
        Some(text) => parse_now(text)?,
        None => SystemClock.now(),
    };
    if args.batch {
        run_batch(now)?;
        return Ok(ExitCode::SUCCESS);
    }
    let headers = args
        .headers
        .iter()
        .map(|header| parse_header(header))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let body = read_body(&args)?;
    let input = ClassifyInput {
        provider: args.provider.as_deref(),
        entry_kind: args.entry_kind.map(CredentialKind::from),
        status: args.status,
        headers: &headers,
        body: &body,
    };
    let classification = classify(&input, now, CooldownConfig::default().reset_ceiling);
    let verdict = Verdict::new(&classification, now);
    let mut out = io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &verdict)?;
        writeln!(out)?;
    } else {
        print_block(&mut out, &classification, &verdict, now)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn print_block(
    out: &mut impl Write,
    classification: &Classification,
    verdict: &Verdict<'_>,
    now: Timestamp,
) -> io::Result<()> {
    writeln!(out, "class        {}", verdict.class)?;
    writeln!(out, "kind         {}", verdict.kind)?;
    writeln!(
        out,
        "terminal     {}",
        if verdict.terminal { "yes" } else { "no" }
    )?;
    writeln!(out, "reason       {}", verdict.reason.unwrap_or("-"))?;
    match classification.reset_at {
        Some(at) => writeln!(
            out,
            "reset at     {} (in {} s)",
            at.to_rfc3339(),
            at.since(now).as_secs()
        )?,
        None => writeln!(out, "reset at     -")?,
    }
    match verdict.cooldown_s {
        Some(secs) => writeln!(out, "cooldown     {secs} s")?,
        None if verdict.terminal => writeln!(out, "cooldown     - (dead until re-auth)")?,
        None => writeln!(out, "cooldown     - (credential kept)")?,
    }
    if let Some(message) = &classification.message {
        writeln!(out, "message      {message}")?;
    }
    writeln!(out, "explanation  {}", verdict.explanation)
}

fn parse_now(text: &str) -> anyhow::Result<Timestamp> {
    if let Ok(secs) = text.trim().parse::<i64>() {
        return Ok(Timestamp::from_secs(secs));
    }
    credpool_core::reset::parse_rfc3339(text)
        .with_context(|| format!("--now {text:?} is neither RFC 3339 nor epoch seconds"))
}

fn parse_header(header: &str) -> anyhow::Result<(String, String)> {
    match header.split_once(':') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        }
        _ => bail!("header {header:?} is not `name: value`"),
    }
}

fn read_body(args: &ClassifyArgs) -> anyhow::Result<Vec<u8>> {
    if let Some(body) = &args.body {
        return Ok(body.clone().into_bytes());
    }
    if let Some(path) = &args.body_file {
        return std::fs::read(path).with_context(|| format!("cannot read {}", path.display()));
    }
    let stdin = io::stdin();
    if stdin.is_terminal() {
        return Ok(Vec::new());
    }
    let mut body = Vec::new();
    stdin
        .lock()
        .read_to_end(&mut body)
        .context("cannot read the body from stdin")?;
    Ok(body)
}

/// Reads JSON lines from stdin and writes one result line per input line.
fn run_batch(now: Timestamp) -> anyhow::Result<()> {
    match write_batch(now) {
        // A closed reader (`… | head`) is not a failure of the batch.
        Err(error)
            if error
                .downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        other => other,
    }
}

fn write_batch(now: Timestamp) -> anyhow::Result<()> {
    let ceiling = CooldownConfig::default().reset_ceiling;
    let mut input = io::stdin().lock();
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let mut line = Vec::with_capacity(4096);
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut number = 0_u64;
    loop {
        line.clear();
        let read = input
            .read_until(b'\n', &mut line)
            .context("cannot read stdin")?;
        if read == 0 {
            break;
        }
        number += 1;
        let text = trim_line_end(&line);
        match classify_line(text, now, ceiling, &mut headers) {
            Ok(classification) => {
                serde_json::to_writer(&mut out, &Verdict::new(&classification, now))
                    .map_err(io::Error::from)?;
            }
            Err(error) => {
                let error = format!("line {number}: {error}");
                serde_json::to_writer(&mut out, &serde_json::json!({ "error": error }))
                    .map_err(io::Error::from)?;
            }
        }
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Classifies one batch line; the error is a short reason for that line's `{"error"}`.
fn classify_line(
    line: &[u8],
    now: Timestamp,
    ceiling: std::time::Duration,
    headers: &mut Vec<(String, String)>,
) -> Result<Classification, String> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Err("empty line".to_owned());
    }
    let text = std::str::from_utf8(line).map_err(|_| "line is not valid UTF-8".to_owned())?;
    let parsed: BatchLine<'_> =
        serde_json::from_str(text).map_err(|error| format!("not a valid input object: {error}"))?;
    let body = parsed.body.ok_or_else(|| "missing body".to_owned())?;
    let entry_kind = match parsed.entry_kind.as_deref() {
        None => None,
        Some("oauth") => Some(CredentialKind::OAuth),
        Some("api-key" | "api_key" | "apikey") => Some(CredentialKind::ApiKey),
        Some(other) => return Err(format!("unknown entry_kind {other:?}")),
    };
    headers.clear();
    for (name, value) in parsed.headers.iter().flatten() {
        let value = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return Err(format!("header {name:?} is not a string")),
        };
        headers.push((name.clone(), value));
    }
    let input = ClassifyInput {
        provider: parsed.provider.as_deref(),
        entry_kind,
        status: parsed.status,
        headers,
        body: body.as_bytes(),
    };
    Ok(classify(&input, now, ceiling))
}
