//! Feature stores for the tests that compare the Redis backend with the
//! in-memory one: a store on a test's Redis, events as the ingest path hands
//! them over, and the check that two backends hold the same counters.

use std::time::Duration;

use detour::features::{AggregateKey, EventUpdates, RedisFeatureStore, RedisSettings, with_facts};

/// A Redis store on `url` under `namespace`, with short deadlines.
pub fn redis_store(url: &str, namespace: &str) -> RedisFeatureStore {
    RedisFeatureStore::new(RedisSettings {
        url: url.to_string(),
        namespace: namespace.to_string(),
        timeout: Duration::from_millis(500),
        dedupe_ttl: Duration::from_secs(3600),
    })
    .unwrap()
}

/// Each key's record written by both backends, with the same clock and
/// counters (to rounding).
pub fn assert_same_counters(
    keys: &[AggregateKey],
    from_redis: &[Option<detour::features::AggregateRecord>],
    from_memory: &[Option<detour::features::AggregateRecord>],
) {
    for (key, (a, b)) in keys.iter().zip(from_redis.iter().zip(from_memory)) {
        let (a, b) = (a.expect("written"), b.expect("written"));
        assert_eq!(a.counters_at, b.counters_at, "{key}");
        for (x, y) in a.counters.iter().zip(&b.counters) {
            assert!(
                (x - y).abs() <= 1e-9 * x.abs().max(1.0),
                "{key}: {x} vs {y}"
            );
        }
    }
}

/// Events as the ingest path hands them to a store: each followed by its
/// facts (`with_facts`).
pub fn as_applied(events: impl IntoIterator<Item = EventUpdates>) -> Vec<EventUpdates> {
    with_facts(events.into_iter().collect()).0
}
