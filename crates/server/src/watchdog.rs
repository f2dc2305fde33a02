//! The store watchdog: a store that refused a write refuses every later one until the
//! process restarts (sled cannot be reopened in-process). Once the data directory takes
//! writes again, the service stops gracefully with exit code [`RESTART_EXIT_CODE`] so that
//! its supervisor (systemd's `Restart=on-failure`, see docs/DEPLOY.md) starts it again on a
//! healthy store.
//!
//! **Invariant:** it never stops a service whose disk still refuses writes (a restart would
//! fail the same way); it probes with a small file of its own, never with the store.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use credpool::{Store, StoreHealth};

/// What `credpool serve` exits with when it stops to reopen its store (EX_TEMPFAIL).
pub const RESTART_EXIT_CODE: u8 = 75;

/// How often the watchdog looks.
const EVERY: Duration = Duration::from_secs(1);

/// Whether `dir` takes a small write (64 KiB, synced, then removed).
fn disk_takes_writes(dir: &Path) -> bool {
    let probe: PathBuf = dir.join(".credpool-write-probe");
    let written = std::fs::File::create(&probe).and_then(|mut file| {
        file.write_all(&[0u8; 64 * 1024])
            .and_then(|()| file.sync_all())
    });
    let _ = std::fs::remove_file(&probe);
    written.is_ok()
}

/// Waits until the store is failing and its directory takes writes again.
pub async fn restart_needed(store: Arc<dyn Store>, dir: PathBuf) {
    let mut ticker = tokio::time::interval(EVERY);
    loop {
        ticker.tick().await;
        if !matches!(store.health(), StoreHealth::Failing { .. }) {
            continue;
        }
        let probe_dir = dir.clone();
        let healthy = tokio::task::spawn_blocking(move || disk_takes_writes(&probe_dir))
            .await
            .unwrap_or(false);
        if healthy {
            tracing::error!(
                dir = %dir.display(),
                "the store refused a write and the disk takes writes again: stopping to reopen it (exit code {RESTART_EXIT_CODE})"
            );
            return;
        }
    }
}
