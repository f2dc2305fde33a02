//! The online side of `credpool admin`: one HTTP request per command, and an SSE follower.
//!
//! **Invariants:** the token travels only in the `Authorization` header and is never
//! printed; it is not sent over plain `http` to a non-loopback host unless the user said
//! `--allow-insecure-http`; an error answer is shown as its status and the server's message
//! (which holds no secret); redirects are not followed (a redirect could carry the token
//! elsewhere); the event stream is decoded per complete event, never per network chunk (a
//! chunk may end inside a multi-byte character).

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use credpool::Secret;
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use super::{AdminCommand, render};
use credpool_server::api::{MoveRequest, StrategyRequest};

/// A client of the admin API.
pub struct Remote {
    base: Url,
    token: Secret,
    http: reqwest::Client,
}

impl Remote {
    /// Builds a client for the API at `url`.
    ///
    /// # Errors
    /// The URL is not an http(s) URL, or it is plain `http` to a non-loopback host and
    /// `allow_insecure_http` is off.
    pub fn new(url: &str, token: Secret, allow_insecure_http: bool) -> anyhow::Result<Remote> {
        let base = Url::parse(url).with_context(|| format!("--url {url:?} is not a URL"))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            bail!("--url must be an http(s) URL");
        }
        if base.scheme() == "http" && !is_loopback(&base) && !allow_insecure_http {
            bail!(
                "refusing to send the admin token unencrypted over plain http to {}: use an https URL (a TLS proxy in front of the service) or a loopback address, or pass --allow-insecure-http",
                base.host_str().unwrap_or_default()
            );
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Remote { base, token, http })
    }

    /// `base` + path segments (each percent-encoded).
    fn url(&self, segments: &[&str]) -> anyhow::Result<Url> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| anyhow::anyhow!("--url cannot take a path"))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    async fn call(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Value> {
        let url = self.url(segments)?;
        let mut request = self
            .http
            .request(method, url.clone())
            .bearer_auth(self.token.expose())
            .timeout(Duration::from_secs(90));
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = request
            .send()
            .await
            .map_err(|error| unreachable_error(&self.base, &error))?;
        let status = response.status();
        let text = response.text().await.context("cannot read the answer")?;
        if !status.is_success() {
            return Err(answer_error(status, &text));
        }
        serde_json::from_str(&text).context("the service answered something that is not JSON")
    }

    /// Fetches a binary answer (a backup).
    async fn fetch_bytes(&self, segments: &[&str]) -> anyhow::Result<zeroize::Zeroizing<Vec<u8>>> {
        let url = self.url(segments)?;
        let response = self
            .http
            .get(url)
            .bearer_auth(self.token.expose())
            .timeout(Duration::from_secs(300))
            .send()
            .await
            .map_err(|error| unreachable_error(&self.base, &error))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(answer_error(status, &text));
        }
        let bytes = response.bytes().await.context("cannot read the backup")?;
        Ok(zeroize::Zeroizing::new(bytes.to_vec()))
    }

    /// Runs one command.
    ///
    /// # Errors
    /// The service cannot be reached or refuses the command.
    pub async fn run(&self, command: &AdminCommand) -> anyhow::Result<Value> {
        let v1 = "v1";
        let providers = "providers";
        let entries = "entries";
        match command {
            AdminCommand::Status { provider: None } => {
                self.call(Method::GET, &[v1, "status"], None).await
            }
            AdminCommand::Status {
                provider: Some(provider),
            } => {
                let snapshot = self
                    .call(Method::GET, &[v1, providers, provider, entries], None)
                    .await?;
                Ok(Value::Array(vec![snapshot]))
            }
            AdminCommand::Providers => self.call(Method::GET, &[v1, providers], None).await,
            AdminCommand::Add(add) => {
                let body =
                    serde_json::to_vec(&add.request()?).context("cannot encode the entry")?;
                self.call(
                    Method::POST,
                    &[v1, providers, &add.provider, entries],
                    Some(body),
                )
                .await
            }
            AdminCommand::Remove { provider, target } => {
                self.call(
                    Method::DELETE,
                    &[v1, providers, provider, entries, target],
                    None,
                )
                .await
            }
            AdminCommand::Reset { provider, target } => {
                self.call(
                    Method::POST,
                    &[v1, providers, provider, entries, target, "reset"],
                    None,
                )
                .await
            }
            AdminCommand::Refresh { provider, target } => {
                self.call(
                    Method::POST,
                    &[v1, providers, provider, entries, target, "refresh"],
                    None,
                )
                .await
            }
            AdminCommand::Move {
                provider,
                target,
                position,
            } => {
                let body = serde_json::to_vec(&MoveRequest {
                    position: *position,
                })
                .context("cannot encode the request")?;
                self.call(
                    Method::POST,
                    &[v1, providers, provider, entries, target, "move"],
                    Some(body),
                )
                .await
            }
            AdminCommand::Strategy { provider, strategy } => {
                let body = serde_json::to_vec(&StrategyRequest {
                    strategy: strategy.clone(),
                })
                .context("cannot encode the request")?;
                self.call(
                    Method::PUT,
                    &[v1, providers, provider, "strategy"],
                    Some(body),
                )
                .await
            }
            AdminCommand::Stats { provider: None } => {
                self.call(Method::GET, &[v1, "stats"], None).await
            }
            AdminCommand::Stats {
                provider: Some(provider),
            } => {
                let pool = self
                    .call(Method::GET, &[v1, providers, provider, "stats"], None)
                    .await?;
                Ok(serde_json::json!({ "pools": [pool] }))
            }
            AdminCommand::Events { .. } => bail!("events are followed, not fetched"),
            AdminCommand::Backup { file } => {
                let bytes = self.fetch_bytes(&[v1, "backup"]).await?;
                credpool_server::private_file::write(file, &bytes)?;
                Ok(serde_json::json!({ "file": file.display().to_string(), "bytes": bytes.len() }))
            }
            AdminCommand::Restore { .. }
            | AdminCommand::Recover { .. }
            | AdminCommand::Rekey { .. }
            | AdminCommand::Import(_) => {
                bail!("restore, recover, rekey and import work offline only")
            }
        }
    }

    /// Follows `GET /v1/events` and prints each event (a JSON line with `json`) until the
    /// service ends the stream.
    ///
    /// # Errors
    /// The service cannot be reached, refuses, or stdout is closed.
    pub async fn follow_events(&self, provider: Option<&str>, json: bool) -> anyhow::Result<()> {
        let mut url = self.url(&["v1", "events"])?;
        if let Some(provider) = provider {
            url.query_pairs_mut().append_pair("provider", provider);
        }
        let mut response = self
            .http
            .get(url)
            .bearer_auth(self.token.expose())
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|error| unreachable_error(&self.base, &error))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(answer_error(status, &text));
        }
        let mut buffer = Vec::new();
        while let Some(chunk) = response.chunk().await.context("the event stream broke")? {
            buffer.extend_from_slice(&chunk);
            for block in complete_blocks(&mut buffer) {
                if let Some(data) = sse_data(&block) {
                    print_event(&data, json)?;
                }
            }
        }
        Ok(())
    }
}

/// Whether `url`'s host is a loopback address (`localhost`, `127.0.0.0/8`, `[::1]`).
fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Takes the complete SSE blocks (each ending with a blank line) off the front of `buffer`,
/// decoded as text; an incomplete block stays for the next chunk. Decoding whole blocks
/// only keeps a multi-byte character split across chunks intact.
fn complete_blocks(buffer: &mut Vec<u8>) -> Vec<String> {
    let mut blocks = Vec::new();
    while let Some(end) = buffer.windows(2).position(|pair| pair == b"\n\n") {
        let block: Vec<u8> = buffer.drain(..end + 2).collect();
        blocks.push(String::from_utf8_lossy(&block).into_owned());
    }
    blocks
}

/// The `data:` payload of one SSE block (comments and keep-alives give `None`).
fn sse_data(block: &str) -> Option<String> {
    let lines: Vec<&str> = block
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(|data| data.strip_prefix(' ').unwrap_or(data))
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

fn print_event(data: &str, json: bool) -> anyhow::Result<()> {
    let line = if json {
        data.to_owned()
    } else {
        match serde_json::from_str::<Value>(data) {
            Ok(value) => render::event_line(&value),
            Err(_) => data.to_owned(),
        }
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .context("cannot write to stdout")
}

fn unreachable_error(base: &Url, error: &reqwest::Error) -> anyhow::Error {
    if error.is_connect() || error.is_timeout() {
        anyhow::anyhow!("cannot reach {base}: is `credpool serve` running there? ({error})")
    } else {
        anyhow::anyhow!("request to {base} failed: {error}")
    }
}

fn answer_error(status: StatusCode, text: &str) -> anyhow::Error {
    let message = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|value| {
            value
                .pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| text.trim().to_owned());
    if status == StatusCode::UNAUTHORIZED {
        return anyhow::anyhow!("{status}: {message} (check --token-file)");
    }
    anyhow::anyhow!("{status}: {message}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_character_split_across_chunks_survives() {
        let stream = "data: {\"label\":\"caf\u{e9} \u{1f511}\"}\n\n: keep-alive\n\ndata: two\n\n";
        let bytes = stream.as_bytes();
        // every split point, including inside the two- and four-byte characters
        for split in 0..=bytes.len() {
            let mut buffer = Vec::new();
            let mut data = Vec::new();
            for chunk in [&bytes[..split], &bytes[split..]] {
                buffer.extend_from_slice(chunk);
                data.extend(
                    complete_blocks(&mut buffer)
                        .iter()
                        .filter_map(|b| sse_data(b)),
                );
            }
            assert_eq!(
                data,
                ["{\"label\":\"caf\u{e9} \u{1f511}\"}", "two"],
                "split at {split}"
            );
            assert!(buffer.is_empty());
        }
    }

    #[test]
    fn plain_http_is_refused_off_loopback_unless_allowed() {
        // (url, allow_insecure_http, accepted)
        let cases = [
            ("http://127.0.0.1:7878", false, true),
            ("http://127.10.0.1:7878", false, true),
            ("http://localhost:7878", false, true),
            ("http://[::1]:7878", false, true),
            ("https://admin.example.com", false, true),
            ("http://admin.example.com:7878", false, false),
            ("http://10.0.0.5:7878", false, false),
            ("http://0.0.0.0:7878", false, false),
            ("http://10.0.0.5:7878", true, true),
        ];
        for (url, allow, accepted) in cases {
            let result = Remote::new(url, Secret::new("t"), allow);
            assert_eq!(result.is_ok(), accepted, "{url} allow={allow}");
            if let Err(error) = result {
                assert!(
                    error.to_string().contains("--allow-insecure-http"),
                    "{error}"
                );
            }
        }
    }
}
