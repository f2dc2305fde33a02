//! `credpool classify`: explains what credpool would do with a provider's response.
//!
//! Single mode classifies one response given by flags (body from `--body`, `--body-file` or
//! stdin) and prints a short block, or one JSON object with `--json`. Batch mode (`--batch`)
//! reads JSON lines from stdin and writes exactly one JSON line per input line, in order. Score
//! mode (`--score FILE…`) classifies recorded answers with known meanings (the corpus format of
//! `crates/core/tests/corpus/`) and prints accuracy per class and per provider.
//!
//! Replay: "now" is `--at TIME` for single answers, and each batch line's own `received_at`
//! when it has one, so a recorded answer gets the reset it had when it was received; without
//! them "now" is the clock, past absolute resets are dropped and relative ones count from now.
//! `--explain` adds the rule that decided and the evidence it used.
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
use credpool_core::classify::score::{Case, Report, run_case};
use credpool_core::classify::{ClassifyInput, Explanation, classify_explained, explain};
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
    /// Score recorded answers with known meanings (corpus JSON lines) and print accuracy.
    #[arg(
        long,
        value_name = "FILE",
        num_args = 1..,
        conflicts_with_all = ["status", "headers", "body", "body_file", "provider", "entry_kind", "batch", "json"]
    )]
    score: Vec<PathBuf>,
    /// Also say which rule decided and the evidence it used (code, status, words, header).
    #[arg(long)]
    explain: bool,
    /// "Now" for the answer (RFC 3339 or epoch seconds): replays a recorded answer as of when
    /// it was received. Batch lines carry their own `received_at`.
    #[arg(long = "at", alias = "now", value_name = "TIME")]
    at: Option<String>,
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
    /// With `--explain`: the rule that decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<&'static str>,
    /// With `--explain`: the rule and its evidence in one line.
    #[serde(skip_serializing_if = "Option::is_none")]
    evidence: Option<String>,
}

impl<'a> Verdict<'a> {
    fn new(classification: &'a Classification, why: Option<&Explanation>, now: Timestamp) -> Self {
        Verdict {
            class: classification.kind.class().as_str(),
            kind: classification.kind.name(),
            terminal: classification.kind.is_terminal(),
            reason: classification.reason.as_deref(),
            reset_at: classification.reset_at.map(Timestamp::to_rfc3339),
            cooldown_s: default_cooldown_secs(classification, now),
            explanation: explain(classification),
            rule: why.map(|why| why.rule.name()),
            evidence: why.map(Explanation::to_line),
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
    /// When the answer was received (RFC 3339): "now" for this line.
    #[serde(default, borrow)]
    received_at: Option<Cow<'a, str>>,
}

/// Runs `credpool classify`.
pub fn run(args: ClassifyArgs) -> anyhow::Result<ExitCode> {
    let now = match &args.at {
        Some(text) => parse_now(text)?,
        None => SystemClock.now(),
    };
    if !args.score.is_empty() {
        return run_score(&args.score);
    }
    if args.batch {
        run_batch(now, args.explain)?;
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
    let (classification, why) =
        classify_explained(&input, now, CooldownConfig::default().reset_ceiling);
    let verdict = Verdict::new(&classification, args.explain.then_some(&why), now);
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
    writeln!(out, "explanation  {}", verdict.explanation)?;
    if let Some(evidence) = &verdict.evidence {
        writeln!(out, "evidence     {evidence}")?;
    }
    Ok(())
}

fn parse_now(text: &str) -> anyhow::Result<Timestamp> {
    if let Ok(secs) = text.trim().parse::<i64>() {
        return Ok(Timestamp::from_secs(secs));
    }
    credpool_core::reset::parse_rfc3339(text)
        .with_context(|| format!("--at {text:?} is neither RFC 3339 nor epoch seconds"))
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
fn run_batch(now: Timestamp, with_rule: bool) -> anyhow::Result<()> {
    match write_batch(now, with_rule) {
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

fn write_batch(now: Timestamp, with_rule: bool) -> anyhow::Result<()> {
    let ceiling = CooldownConfig::default().reset_ceiling;
    let mut input = io::stdin().lock();
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let mut line = Vec::with_capacity(4096);
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut number = 0_u64;
    loop {
        line.clear();
        let read = read_capped_line(&mut input, &mut line).context("cannot read stdin")?;
        let Some(complete) = read else {
            break;
        };
        number += 1;
        if !complete {
            let error = format!("line {number}: too long (over {MAX_LINE_BYTES} bytes)");
            serde_json::to_writer(&mut out, &serde_json::json!({ "error": error }))
                .map_err(io::Error::from)?;
            out.write_all(b"\n")?;
            continue;
        }
        let text = trim_line_end(&line);
        match classify_line(text, now, ceiling, &mut headers) {
            Ok((classification, why, line_now)) => {
                let why = with_rule.then_some(&why);
                serde_json::to_writer(&mut out, &Verdict::new(&classification, why, line_now))
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

/// The longest batch line read, in bytes; a longer one is answered with an error and skipped
/// without being held in memory.
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// Reads one line of at most [`MAX_LINE_BYTES`] into `line`: `None` at the end of the input,
/// `Some(true)` for a whole line, `Some(false)` for a longer one (whose rest is read and
/// dropped, a buffer at a time).
fn read_capped_line(input: &mut impl BufRead, line: &mut Vec<u8>) -> io::Result<Option<bool>> {
    let limit = u64::try_from(MAX_LINE_BYTES).unwrap_or(u64::MAX);
    let read = input.by_ref().take(limit + 1).read_until(b'\n', line)?;
    if read == 0 {
        return Ok(None);
    }
    let content = line.len() - usize::from(line.ends_with(b"\n"));
    if content <= MAX_LINE_BYTES {
        return Ok(Some(true));
    }
    line.clear();
    loop {
        let buffer = input.fill_buf()?;
        if buffer.is_empty() {
            return Ok(Some(false));
        }
        match buffer.iter().position(|b| *b == b'\n') {
            Some(at) => {
                input.consume(at + 1);
                return Ok(Some(false));
            }
            None => {
                let length = buffer.len();
                input.consume(length);
            }
        }
    }
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Classifies one batch line as of its `received_at` (else `now`); the error is a short reason
/// for that line's `{"error"}`.
fn classify_line(
    line: &[u8],
    now: Timestamp,
    ceiling: std::time::Duration,
    headers: &mut Vec<(String, String)>,
) -> Result<(Classification, Explanation, Timestamp), String> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Err("empty line".to_owned());
    }
    let text = std::str::from_utf8(line).map_err(|_| "line is not valid UTF-8".to_owned())?;
    let parsed: BatchLine<'_> =
        serde_json::from_str(text).map_err(|error| format!("not a valid input object: {error}"))?;
    let body = parsed.body.ok_or_else(|| "missing body".to_owned())?;
    let now = match parsed.received_at.as_deref() {
        None => now,
        Some(at) => credpool_core::reset::parse_rfc3339(at)
            .ok_or_else(|| format!("received_at {at:?} is not RFC 3339"))?,
    };
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
    let (classification, why) = classify_explained(&input, now, ceiling);
    Ok((classification, why, now))
}

/// Scores corpus files: a table per class and per provider, the totals, then every miss.
fn run_score(files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let ceiling = CooldownConfig::default().reset_ceiling;
    let mut report = Report::default();
    let mut bad_lines = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let label = format!("{name}:{}", index + 1);
            match Case::parse(line) {
                Ok(case) => report.results.push(run_case(label, &case, ceiling)),
                Err(error) => bad_lines.push(format!("{label}: {error}")),
            }
        }
    }
    let mut out = io::stdout().lock();
    write!(out, "{}", report.table())?;
    writeln!(
        out,
        "class accuracy {:.1} %, reset accuracy {:.1} % over {} lines",
        100.0 * report.class_accuracy(),
        100.0 * report.reset_accuracy(),
        report.results.len()
    )?;
    for miss in report.mismatches() {
        writeln!(out, "miss  {miss}")?;
    }
    for bad in &bad_lines {
        writeln!(out, "error {bad}")?;
    }
    out.flush()?;
    Ok(if bad_lines.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
