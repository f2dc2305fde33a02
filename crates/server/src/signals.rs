//! The signals that stop `credpool serve`: SIGTERM, SIGINT and SIGHUP.
//!
//! SIGHUP stops gracefully too (drain, settle exchanges in flight, flush): a closing terminal
//! sends it, and an operator who sends it expecting a reload must never lose a grant to it.
//!
//! **Invariant:** the signals are watched from the start of the process, before the store is
//! opened, so a signal during start-up stops the service instead of killing it.

use anyhow::Context;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// The stop signals, watched from the moment this is built.
pub struct Signals {
    terminate: Signal,
    interrupt: Signal,
    hangup: Signal,
}

impl Signals {
    /// Starts watching SIGTERM, SIGINT and SIGHUP.
    ///
    /// # Errors
    /// A handler cannot be installed.
    pub fn new() -> anyhow::Result<Signals> {
        Ok(Signals {
            terminate: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
            interrupt: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
            hangup: signal(SignalKind::hangup()).context("cannot watch SIGHUP")?,
        })
    }

    /// Waits for the next stop signal; returns its name.
    pub async fn wait(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.hangup.recv() => "SIGHUP",
        }
    }
}
