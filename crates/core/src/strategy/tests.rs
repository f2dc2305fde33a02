use super::*;

/// One entry of a test pool: `'.'` available, `'c'` cooling or dead, or a digit giving the
/// leases it already holds.
fn pool(shape: &str) -> Vec<Option<u32>> {
    shape
        .chars()
        .map(|c| match c {
            '.' => Some(0),
            'c' => None,
            d => d.to_digit(10),
        })
        .collect()
}

/// Runs `picks` selections on a pool shape and returns the positions chosen (`-` for none),
/// with selections counted as uses and the random numbers taken from `randoms` in turn.
fn check(strategy: Strategy, shape: &str, randoms: &[u64], cap: LeaseCap, expected: &str) {
    let entries = pool(shape);
    let mut uses = vec![0u64; entries.len()];
    let mut state = StrategyState::default();
    let mut got = String::new();
    for (step, _) in expected.chars().enumerate() {
        let random = randoms.get(step).copied().unwrap_or(0);
        let picked = pick(
            strategy,
            entries.len(),
            |i| {
                entries[i].map(|leases| Candidate {
                    uses: uses[i],
                    leases,
                    weight: u32::try_from(i).unwrap_or(0) + 1,
                })
            },
            cap,
            &mut state,
            random,
        );
        match picked {
            Some(i) => {
                uses[i] += 1;
                got.push(char::from_digit(u32::try_from(i).unwrap_or(0), 10).unwrap_or('?'));
            }
            None => got.push('-'),
        }
    }
    assert_eq!(got, expected, "{strategy:?} on {shape:?}");
}

const SOFT: LeaseCap = LeaseCap {
    max_leases: 1,
    allow_over_cap: true,
};
const STRICT: LeaseCap = LeaseCap {
    max_leases: 1,
    allow_over_cap: false,
};
const UNCAPPED: LeaseCap = LeaseCap {
    max_leases: u32::MAX,
    allow_over_cap: true,
};

#[test]
fn fill_first_takes_the_first_available() {
    check(Strategy::FillFirst, "...", &[], UNCAPPED, "000");
    check(Strategy::FillFirst, "c..", &[], UNCAPPED, "111");
    check(Strategy::FillFirst, "ccc", &[], UNCAPPED, "--");
    check(Strategy::FillFirst, "", &[], UNCAPPED, "-");
}

#[test]
fn round_robin_continues_after_the_previous_pick_and_skips_cooling() {
    check(Strategy::RoundRobin, "...", &[], UNCAPPED, "0120120");
    check(Strategy::RoundRobin, ".c.", &[], UNCAPPED, "02020");
    check(Strategy::RoundRobin, "c.c", &[], UNCAPPED, "111");
    check(Strategy::RoundRobin, "ccc", &[], UNCAPPED, "-");
}

#[test]
fn least_used_balances_and_breaks_ties_by_priority() {
    check(Strategy::LeastUsed, "...", &[], UNCAPPED, "012012");
    check(Strategy::LeastUsed, ".c.", &[], UNCAPPED, "0202");
}

#[test]
fn random_is_uniform_over_available_entries() {
    check(Strategy::Random, "...", &[0, 1, 2, 3, 5], UNCAPPED, "01202");
    check(Strategy::Random, "c.c.", &[0, 1, 2, 3], UNCAPPED, "1313");
}

#[test]
fn weighted_random_follows_weights() {
    // weights are position + 1: 1, 2, 3 → total 6; ranges [0,1) [1,3) [3,6)
    check(
        Strategy::WeightedRandom,
        "...",
        &[0, 1, 2, 3, 5, 6],
        UNCAPPED,
        "011220",
    );
    // position 1 cooling: weights 1 and 3 → ranges [0,1) [1,4)
    check(
        Strategy::WeightedRandom,
        ".c.",
        &[0, 1, 3, 4],
        UNCAPPED,
        "0220",
    );
}

#[test]
fn soft_cap_prefers_entries_under_it_then_the_least_leased() {
    check(Strategy::FillFirst, "1.", &[], SOFT, "11");
    check(Strategy::FillFirst, "21", &[], SOFT, "11");
    check(Strategy::FillFirst, "1c1", &[], SOFT, "00");
    check(Strategy::RoundRobin, "1..", &[], SOFT, "1212");
}

#[test]
fn strict_cap_refuses_when_every_entry_is_at_it() {
    check(Strategy::FillFirst, "11", &[], STRICT, "-");
    check(Strategy::LeastUsed, "1.", &[], STRICT, "11");
}

#[test]
fn strategies_parse_from_their_names() {
    for strategy in Strategy::ALL {
        assert_eq!(strategy.as_str().parse::<Strategy>(), Ok(strategy));
    }
    assert!("fastest".parse::<Strategy>().is_err());
}
