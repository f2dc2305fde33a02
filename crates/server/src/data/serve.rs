//! Starting and stopping the data plane's listeners: the Unix socket, optional TCP, and the
//! reaper of expired leases.
//!
//! **Invariants:** the socket file is created 0600 (in a directory the service owns) and
//! removed at a clean stop; a stale socket left by a killed service is replaced, but a socket
//! another live process answers on is never taken over.

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use credpool::Credpool;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{DataState, router, spawn_reaper};
use crate::config::DataConfig;
use crate::listener::{self, ListenerLimits};

/// The data plane's running parts.
pub(crate) struct DataPlane {
    servers: Vec<JoinHandle<()>>,
    reaper: JoinHandle<()>,
    socket: PathBuf,
}

impl DataPlane {
    /// The server tasks, to drain with the admin API's.
    pub(crate) fn take_servers(&mut self) -> Vec<JoinHandle<()>> {
        std::mem::take(&mut self.servers)
    }
}

impl Drop for DataPlane {
    fn drop(&mut self) {
        self.reaper.abort();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Binds the socket at `path`, replacing a stale one.
async fn bind_socket(path: &Path) -> anyhow::Result<UnixListener> {
    if let Ok(metadata) = std::fs::symlink_metadata(path) {
        if !metadata.file_type().is_socket() {
            bail!(
                "{} exists and is not a socket; remove it or set [data] socket",
                path.display()
            );
        }
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            bail!(
                "another process serves on {}; stop it or set [data] socket",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove the stale socket {}", path.display()))?;
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("cannot bind {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot make {} owner-only", path.display()))?;
    Ok(listener)
}

fn say(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "credpool serve: {line}");
    let _ = stdout.flush();
}

/// Starts the data plane on `config`'s socket (and TCP address, if any).
pub(crate) async fn start(
    pool: &Credpool,
    config: &DataConfig,
    limits: ListenerLimits,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<DataPlane> {
    let state = DataState::new(pool.client(), Arc::clone(pool.clock()), config.lease_ttl);
    let limits = ListenerLimits {
        max_connections: listener::fit_to_descriptors(config.max_connections),
        ..limits
    };
    let socket = bind_socket(&config.socket).await?;
    tracing::info!(socket = %config.socket.display(), lease_ttl_s = config.lease_ttl.as_secs(), "data plane listening");
    say(&format!("data plane on unix:{}", config.socket.display()));
    let mut servers = vec![tokio::spawn(listener::serve(
        socket,
        router(state.clone(), None),
        limits,
        stop.clone(),
    ))];
    if let Some(address) = config.listen {
        let (token, created) = crate::token::load_or_create(&config.token_file)?;
        if created {
            tracing::info!(path = %config.token_file.display(), "lease token created");
        }
        let tcp = TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address} for the data plane"))?;
        let address = tcp.local_addr().context("no local address")?;
        if !address.ip().is_loopback() {
            tracing::warn!(%address, "the data plane is plain http on a non-loopback address: lease answers carry secrets; put it behind TLS");
        }
        say(&format!("data plane on http://{address}"));
        servers.push(tokio::spawn(listener::serve(
            tcp,
            router(state.clone(), Some(Arc::new(token))),
            limits,
            stop.clone(),
        )));
    }
    let reaper = spawn_reaper(&state, config.lease_ttl);
    Ok(DataPlane {
        servers,
        reaper,
        socket: config.socket.clone(),
    })
}
