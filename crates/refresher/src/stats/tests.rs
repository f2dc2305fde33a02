use std::time::Duration;

use super::RefresherStats;

#[test]
fn exchange_latency_lands_in_the_first_bucket_whose_bound_it_does_not_exceed() {
    let mut stats = RefresherStats::default();
    for millis in [0, 5, 6, 100, 20_000, 20_001, 90_000] {
        stats.observe_exchange_latency(Duration::from_millis(millis));
    }
    let mut expected = vec![0; RefresherStats::LATENCY_BUCKETS_MS.len() + 1];
    expected[0] = 2; // 0 and 5 ms (≤ 5)
    expected[1] = 1; // 6 ms (≤ 10)
    expected[4] = 1; // 100 ms (≤ 100)
    expected[11] = 1; // 20 s (≤ 20 s)
    expected[12] = 2; // slower than the last bound
    assert_eq!(stats.exchange_latency_buckets, expected);
    assert_eq!(stats.exchange_latency_count, 7);
    assert_eq!(stats.exchange_latency_sum_us, 130_112_000);
}
