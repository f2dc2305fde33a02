//! A wall clock driven by tokio's time, so paused-time tests move deadlines too.

use credpool_core::{Clock, Timestamp};
use tokio::time::Instant;

/// Wall-clock time derived from tokio's clock: the wall time at creation plus tokio time
/// elapsed since. Under `tokio::time::pause` it advances only with tokio time, so one
/// `tokio::time::advance` moves both timers and cooldown deadlines.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start_wall: Timestamp,
    start_instant: Instant,
}

impl TokioClock {
    /// Starts at `start_wall`; must be called inside a tokio runtime.
    pub fn starting_at(start_wall: Timestamp) -> Self {
        TokioClock {
            start_wall,
            start_instant: Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        self.start_wall.plus(self.start_instant.elapsed())
    }
}
