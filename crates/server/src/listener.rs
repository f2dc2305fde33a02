//! The listeners of the admin and data-plane APIs (TCP or a Unix socket): axum behind a hand-held accept loop that bounds what one client can
//! take — a connection cap, a deadline for a request's headers and one for an idle
//! keep-alive connection — so that idle or slow connections can neither stall the API nor
//! use up the process's file descriptors (the store and the refresher need some).
//!
//! **Invariants:** at most `max_connections` connections are open at once (the next ones
//! wait in the kernel's backlog); a connection that sends no complete request head within
//! `header_read_timeout` is closed, and so is a keep-alive connection idle that long; an
//! accept error (out of descriptors) pauses accepting briefly instead of spinning; on
//! shutdown no new connection is accepted and open ones finish their request.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{Semaphore, watch};

/// A listening socket the accept loop can take connections from: TCP or a Unix socket.
pub trait Accept: Send + 'static {
    /// One connection.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Takes the next connection.
    fn accept_stream(
        &self,
    ) -> impl std::future::Future<Output = std::io::Result<Self::Stream>> + Send;
}

impl Accept for TcpListener {
    type Stream = TcpStream;

    async fn accept_stream(&self) -> std::io::Result<TcpStream> {
        let (stream, _) = self.accept().await?;
        // Small requests and answers: waiting to fill a segment only adds latency.
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

impl Accept for UnixListener {
    type Stream = UnixStream;

    async fn accept_stream(&self) -> std::io::Result<UnixStream> {
        self.accept().await.map(|(stream, _)| stream)
    }
}

/// What the listener allows one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// How long a request's head may take to arrive — also how long a keep-alive connection
    /// may sit idle between requests.
    pub header_read_timeout: Duration,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

/// Connections allowed by default (lowered to fit the descriptor limit, see
/// [`fit_to_descriptors`]).
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

/// Descriptors kept for everything but connections: the store's files, the refresher's
/// sockets, logs.
pub const RESERVED_DESCRIPTORS: usize = 128;

/// Lowers `wanted` so that connections leave [`RESERVED_DESCRIPTORS`] of the process's
/// descriptor limit (`RLIMIT_NOFILE`, read from `/proc/self/limits`) free; at least 8.
pub fn fit_to_descriptors(wanted: usize) -> usize {
    let limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("Max open files"))
                .and_then(|line| line.split_whitespace().nth(3))
                .and_then(|soft| soft.parse::<usize>().ok())
        })
        .unwrap_or(1024);
    wanted
        .min(limit.saturating_sub(RESERVED_DESCRIPTORS))
        .max(8)
}

/// Serves `router` on `listener` within `limits` until `shutdown` turns `true`, then waits
/// for the requests in flight (the caller bounds that wait).
pub async fn serve<L: Accept>(
    listener: L,
    router: Router,
    limits: ListenerLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    // HTTP/1.1 only: a protocol sniffer (HTTP/2 detection) would wait for a first byte without
    // a deadline, which is exactly what an idle connection never sends.
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot,
            _ = shutdown.wait_for(|stopping| *stopping) => break,
        };
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            accepted = listener.accept_stream() => accepted,
            _ = shutdown.wait_for(|stopping| *stopping) => break,
        };
        let stream = match accepted {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%error, "cannot accept a connection; pausing accepts for 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
