//! Percentiles of latency samples and the process's resident memory.
//!
//! **Invariant:** a percentile is read from the sorted samples themselves (nearest rank), never
//! interpolated, so `p50 ≤ p99 ≤ max` always holds and a reported number is one that happened.

use std::time::Duration;

use anyhow::Context;

/// Latency samples of one measured run, in nanoseconds, and how long the run took.
#[derive(Debug, Clone)]
pub(crate) struct Samples {
    sorted_ns: Vec<u64>,
    wall: Duration,
}

impl Samples {
    /// Sorts `ns` (one sample per operation) taken over `wall`.
    pub(crate) fn new(mut ns: Vec<u64>, wall: Duration) -> Self {
        ns.sort_unstable();
        Samples {
            sorted_ns: ns,
            wall,
        }
    }

    /// Returns the nearest-rank percentile `q` (0 < q ≤ 1), 0 for no samples.
    pub(crate) fn percentile_ns(&self, q: f64) -> u64 {
        let len = self.sorted_ns.len();
        if len == 0 {
            return 0;
        }
        let rank = (q * len as f64).ceil() as usize;
        self.sorted_ns[rank.clamp(1, len) - 1]
    }

    /// The median.
    pub(crate) fn p50_ns(&self) -> u64 {
        self.percentile_ns(0.50)
    }

    /// The 99th percentile.
    pub(crate) fn p99_ns(&self) -> u64 {
        self.percentile_ns(0.99)
    }

    /// The slowest sample.
    pub(crate) fn max_ns(&self) -> u64 {
        self.sorted_ns.last().copied().unwrap_or(0)
    }

    /// The smallest sample.
    pub(crate) fn min_ns(&self) -> u64 {
        self.sorted_ns.first().copied().unwrap_or(0)
    }

    /// Operations per second over the run's wall time.
    pub(crate) fn ops_per_s(&self) -> f64 {
        let secs = self.wall.as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        self.sorted_ns.len() as f64 / secs
    }
}

/// Converts a duration to whole nanoseconds, saturating.
pub(crate) fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Returns the median of a few numbers (the median run of several), 0 for none.
pub(crate) fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Reads this process's resident set size in bytes from `/proc/self/status` (`VmRSS`).
pub(crate) fn resident_bytes() -> anyhow::Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("cannot read /proc/self/status")?;
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .context("no VmRSS line in /proc/self/status")?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .context("VmRSS is not a number")?;
    Ok(kib * 1024)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn check(samples: &[u64], q: f64, expected: u64) {
        let s = Samples::new(samples.to_vec(), Duration::from_secs(1));
        assert_eq!(s.percentile_ns(q), expected, "{samples:?} at {q}");
    }

    #[test]
    fn nearest_rank_percentiles() {
        check(&[], 0.5, 0);
        check(&[7], 0.5, 7);
        check(&[7], 0.99, 7);
        check(&[3, 1, 2], 0.5, 2);
        check(&[4, 3, 2, 1], 0.5, 2);
        check(&(1..=100).collect::<Vec<_>>(), 0.99, 99);
        check(&(1..=1000).collect::<Vec<_>>(), 0.99, 990);
        check(&(1..=100).collect::<Vec<_>>(), 1.0, 100);
    }

    #[test]
    fn median_of_runs() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut []), 0.0);
    }

    #[test]
    fn resident_memory_is_readable() {
        assert!(resident_bytes().unwrap() > 0);
    }
}
