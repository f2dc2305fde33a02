//! Capturing `tracing` output in memory, so tests can assert that no secret is ever logged.
//!
//! **Invariant:** the capture is a thread-local default subscriber at TRACE level; it sees
//! events of the current thread only (the default `#[tokio::test]` runtime is single
//! threaded, which is what these tests use). Output is plain text, without ANSI colours.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use tracing::subscriber::DefaultGuard;
use tracing_subscriber::fmt::MakeWriter;

/// The `MakeWriter` behind a capture: every writer appends to one shared buffer.
#[derive(Clone, Debug, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

/// Returns everything a capture holds so far, lossily decoded as UTF-8.
pub fn captured_text(buffer: &Arc<Mutex<Vec<u8>>>) -> String {
    let bytes = buffer.lock().unwrap_or_else(PoisonError::into_inner);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A writer appending to the shared buffer.
pub struct BufferWriter(Arc<Mutex<Vec<u8>>>);

impl io::Write for BufferWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for CapturedLogs {
    type Writer = BufferWriter;

    fn make_writer(&'a self) -> Self::Writer {
        BufferWriter(Arc::clone(&self.0))
    }
}

/// Installs a TRACE-level fmt subscriber writing into memory for the current thread.
///
/// Keep the guard alive for as long as events should be captured; dropping it restores the
/// previous subscriber. Read the buffer with [`captured_text`].
pub fn capture_tracing() -> (DefaultGuard, Arc<Mutex<Vec<u8>>>) {
    let logs = CapturedLogs::default();
    let buffer = Arc::clone(&logs.0);
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    (guard, buffer)
}
