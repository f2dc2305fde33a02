//! Selection strategies as pure functions over a provider's entries in priority order.
//!
//! **Invariant:** a strategy never returns an entry the caller marked unavailable (cooling,
//! dead, benched for the model); entries at their lease cap are chosen only when the caller
//! allows it (soft cap) and no entry is under it, and then the least-leased wins.
//!
//! The caller describes each position with a closure rather than a slice so the hot path
//! builds nothing: `fill_first` and `round_robin` stop at the first usable entry.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How an entry is chosen among the available ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The first available entry in priority order (default; keeps one key warm).
    #[default]
    FillFirst,
    /// Each selection continues after the previous pick.
    RoundRobin,
    /// Uniformly among the available entries.
    Random,
    /// The entry with the fewest selections; ties by priority.
    LeastUsed,
    /// Randomly, in proportion to each entry's weight.
    WeightedRandom,
}

impl Strategy {
    /// All strategies, in documentation order.
    pub const ALL: [Strategy; 5] = [
        Strategy::FillFirst,
        Strategy::RoundRobin,
        Strategy::Random,
        Strategy::LeastUsed,
        Strategy::WeightedRandom,
    ];

    /// Returns the snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::FillFirst => "fill_first",
            Strategy::RoundRobin => "round_robin",
            Strategy::Random => "random",
            Strategy::LeastUsed => "least_used",
            Strategy::WeightedRandom => "weighted_random",
        }
    }
}

impl FromStr for Strategy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Strategy::ALL
            .into_iter()
            .find(|s| s.as_str() == text.trim())
            .ok_or_else(|| {
                format!(
                    "unknown strategy {text:?}; expected one of fill_first, round_robin, random, least_used, weighted_random"
                )
            })
    }
}

/// What a strategy needs to know about one available entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Times selected so far (`least_used`).
    pub uses: u64,
    /// Leases currently held.
    pub leases: u32,
    /// Relative weight (`weighted_random`), at least 1.
    pub weight: u32,
}

/// Strategy state kept by the pool between selections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StrategyState {
    /// The position `round_robin` starts its next scan from.
    pub round_robin_cursor: usize,
}

/// The per-entry lease cap as the strategy applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseCap {
    /// Leases an entry may hold before others are preferred.
    pub max_leases: u32,
    /// Whether an entry at its cap may still be chosen when all are at it (soft cap).
    pub allow_over_cap: bool,
}

/// Picks a position among `len` entries in priority order.
///
/// `candidate(i)` describes the entry at position `i`, or returns `None` when it is not
/// available. `random` is a uniformly random number supplied by the caller (core holds no RNG).
/// Returns `None` when nothing can be chosen.
pub fn pick(
    strategy: Strategy,
    len: usize,
    candidate: impl Fn(usize) -> Option<Candidate>,
    cap: LeaseCap,
    state: &mut StrategyState,
    random: u64,
) -> Option<usize> {
    let under_cap = |i: usize| candidate(i).filter(|c| c.leases < cap.max_leases);
    let picked = pick_among(strategy, len, &under_cap, state, random);
    let picked = match picked {
        Some(index) => Some(index),
        None if cap.allow_over_cap => (0..len)
            .filter_map(|i| candidate(i).map(|c| (c.leases, i)))
            .min()
            .map(|(_, i)| i),
        None => None,
    };
    if strategy == Strategy::RoundRobin
        && let Some(index) = picked
    {
        state.round_robin_cursor = (index + 1) % len.max(1);
    }
    picked
}

fn pick_among(
    strategy: Strategy,
    len: usize,
    candidate: &impl Fn(usize) -> Option<Candidate>,
    state: &StrategyState,
    random: u64,
) -> Option<usize> {
    match strategy {
        Strategy::FillFirst => (0..len).find(|&i| candidate(i).is_some()),
        Strategy::RoundRobin => {
            let start = state.round_robin_cursor % len.max(1);
            (start..len)
                .chain(0..start)
                .find(|&i| candidate(i).is_some())
        }
        Strategy::LeastUsed => (0..len)
            .filter_map(|i| candidate(i).map(|c| (c.uses, i)))
            .min()
            .map(|(_, i)| i),
        Strategy::Random => {
            let available = (0..len).filter(|&i| candidate(i).is_some()).count();
            let nth = usize::try_from(random % (available.max(1) as u64)).unwrap_or(0);
            (0..len).filter(|&i| candidate(i).is_some()).nth(nth)
        }
        Strategy::WeightedRandom => {
            let total: u64 = (0..len)
                .filter_map(|i| candidate(i).map(|c| u64::from(c.weight.max(1))))
                .sum();
            if total == 0 {
                return None;
            }
            let mut target = random % total;
            (0..len).find(|&i| match candidate(i) {
                Some(c) => {
                    let weight = u64::from(c.weight.max(1));
                    if target < weight {
                        true
                    } else {
                        target -= weight;
                        false
                    }
                }
                None => false,
            })
        }
    }
}

#[cfg(test)]
mod tests;
