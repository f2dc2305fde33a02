//! The data plane measured from Rust: lease + release over the Unix socket with one
//! persistent connection (p50, p99), the same pair with 64 connections at once (throughput),
//! and a `GET /v1/health` round trip over the same connection as the floor (what any request
//! over this socket and HTTP stack costs).
//!
//! **Invariant:** the service runs in this process on a temporary socket with an in-memory
//! pool of 3 API keys (soft cap, so 64 clients never wait for a key); nothing leaves the
//! machine.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use credpool::admin::Add;
use credpool::{Credpool, ProviderId, Secret, api_key_entry};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

use super::stats::Samples;

/// What the section measured.
pub(crate) struct DataPlaneResult {
    /// Lease + release pairs over one connection.
    pub(crate) one: Samples,
    /// `GET /v1/health` over one connection.
    pub(crate) floor: Samples,
    /// Lease + release pairs over 64 connections at once.
    pub(crate) many: Samples,
    /// Connections of `many`.
    pub(crate) connections: usize,
}

/// One persistent HTTP/1.1 connection to the socket.
struct Connection {
    sender: SendRequest<Full<Bytes>>,
}

impl Connection {
    async fn open(socket: &Path) -> anyhow::Result<Connection> {
        let stream = UnixStream::connect(socket)
            .await
            .with_context(|| format!("connecting {}", socket.display()))?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Connection { sender })
    }

    async fn call(
        &mut self,
        method: &str,
        path: &str,
        body: &'static str,
    ) -> anyhow::Result<Bytes> {
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "credpool")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(body.as_bytes())))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            bail!("{method} {path}: {status}");
        }
        Ok(bytes)
    }

    /// One lease and its release.
    async fn pair(&mut self) -> anyhow::Result<()> {
        let leased = self
            .call("POST", "/v1/lease", r#"{"provider":"openai"}"#)
            .await?;
        let value: serde_json::Value = serde_json::from_slice(&leased)?;
        let id = value["lease"]["id"].as_str().context("no lease id")?;
        let path = format!("/v1/leases/{id}");
        let request = hyper::Request::builder()
            .method("DELETE")
            .uri(path)
            .header("host", "credpool")
            .body(Full::new(Bytes::new()))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let _ = response.into_body().collect().await?;
        Ok(())
    }
}

async fn measure(
    socket: PathBuf,
    pairs: usize,
    connections: usize,
    window: Duration,
) -> anyhow::Result<DataPlaneResult> {
    let mut one = Connection::open(&socket).await?;
    for _ in 0..pairs / 10 {
        one.pair().await?;
    }
    let floor = {
        let mut ns = Vec::with_capacity(pairs);
        let started = Instant::now();
        for _ in 0..pairs {
            let at = Instant::now();
            one.call("GET", "/v1/health", "").await?;
            ns.push(u64::try_from(at.elapsed().as_nanos()).unwrap_or(u64::MAX));
        }
        Samples::new(ns, started.elapsed())
    };
    let single = {
        let mut ns = Vec::with_capacity(pairs);
        let started = Instant::now();
        for _ in 0..pairs {
            let at = Instant::now();
            one.pair().await?;
            ns.push(u64::try_from(at.elapsed().as_nanos()).unwrap_or(u64::MAX));
        }
        Samples::new(ns, started.elapsed())
    };
    let started = Instant::now();
    let deadline = started + window;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let socket = socket.clone();
        tasks.spawn(async move {
            let mut connection = Connection::open(&socket).await?;
            let mut ns = Vec::new();
            while Instant::now() < deadline {
                let at = Instant::now();
                connection.pair().await?;
                ns.push(u64::try_from(at.elapsed().as_nanos()).unwrap_or(u64::MAX));
            }
            anyhow::Ok(ns)
        });
    }
    let mut all = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        all.extend(joined??);
    }
    let many = Samples::new(all, started.elapsed());
    Ok(DataPlaneResult {
        one: single,
        floor,
        many,
        connections,
    })
}

/// Serves a pool of 3 keys on a temporary socket and measures it.
pub(crate) async fn data_plane(pairs: usize, window: Duration) -> anyhow::Result<DataPlaneResult> {
    let dir = tempfile::tempdir()?;
    let pool = Credpool::builder().in_memory().start().await?;
    let openai = ProviderId::new("openai");
    for i in 0..3 {
        pool.admin()
            .run(
                &openai,
                Add(api_key_entry(
                    &format!("bench-{i}"),
                    Secret::new(format!("sk-bench-data-plane-{i:04}")),
                )),
            )
            .await?;
    }
    let config = credpool_server::config::DataConfig::defaults(dir.path());
    let socket = config.socket.clone();
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let server = credpool_server::run_data_plane(&pool, &config, stopping);
    let client = async {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            if Instant::now() > deadline {
                bail!("the data plane did not start");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let result = measure(socket.clone(), pairs, 64, window).await;
        let _ = stop.send(true);
        result
    };
    let (served, measured) = tokio::join!(server, client);
    served?;
    let result = measured?;
    pool.shutdown().await?;
    Ok(result)
}
