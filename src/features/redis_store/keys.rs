//! Where the Redis store keeps what: the name of every key (the table in
//! [`super`]'s doc) and the time buckets of event ids and entities. Pure: builds
//! strings and does arithmetic, never talks to Redis.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::features::aggregates::AggregateKey;

/// Time buckets of event ids and entities read by every ingest and every
/// entity lookup: the current one, the next, and the four before (see
/// `Keys::buckets`).
pub const BUCKETS: usize = 6;

/// The key layout of one namespace and dedupe TTL.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Keys {
    namespace: String,
    /// The dedupe TTL in whole seconds, at least 1.
    ttl_secs: u64,
}

impl Keys {
    /// The layout under `namespace`, with ids remembered for `dedupe_ttl`.
    pub(super) fn new(namespace: &str, dedupe_ttl: Duration) -> Self {
        Keys {
            namespace: namespace.to_string(),
            ttl_secs: dedupe_ttl.as_secs().max(1),
        }
    }

    /// The key of a record: `{ns}:{kind}:{id}`.
    pub(super) fn record(&self, key: &AggregateKey) -> String {
        // On every scoring request's path, twenty times: no formatter.
        let kind = key.kind.name();
        let mut out = String::with_capacity(self.namespace.len() + kind.len() + key.id.len() + 2);
        for part in [self.namespace.as_str(), ":", kind, ":", key.id.as_str()] {
            out.push_str(part);
        }
        out
    }

    /// The key of the set of event ids applied in a bucket.
    pub(super) fn seen(&self, bucket: u64) -> String {
        format!("{}:seen:{bucket}", self.namespace)
    }

    /// The key of the hash of entities written in a bucket; an entity's field
    /// there is [`EntityKey::suffix`](crate::features::EntityKey::suffix).
    pub(super) fn entities(&self, bucket: u64) -> String {
        format!("{}:entities:{bucket}", self.namespace)
    }

    /// The key of the set of carriers seen on a lane.
    pub(super) fn lane_carriers(&self, origin: &str, destination: &str) -> String {
        format!("{}:lane_carriers:{origin}:{destination}", self.namespace)
    }

    /// A key no other round of any call uses: set (briefly) by the first chunk
    /// of a round that is refused, so the chunks after it hold back.
    pub(super) fn round_marker(&self) -> String {
        static ROUNDS: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!(
            "{}:refused:{}:{nanos}:{}",
            self.namespace,
            std::process::id(),
            ROUNDS.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// The time buckets that may hold event ids and entities at `now` (Unix
    /// seconds) — the current one first (the one written to), then the next
    /// one, then the four before — and when the current one expires.
    ///
    /// A bucket spans a quarter of the dedupe TTL and expires a TTL after it
    /// ends, so whatever is written to it is kept for at least the TTL and at
    /// most a quarter longer; the current bucket and the four before it cover
    /// everything still kept. The next bucket is read too, for what a replica
    /// whose clock runs ahead (by less than a bucket) has already written there.
    pub(super) fn buckets(&self, now: u64) -> ([u64; BUCKETS], u64) {
        let ttl = self.ttl_secs;
        let width = ttl.div_ceil(4);
        let current = now / width;
        let buckets = std::array::from_fn(|i| match i {
            0 => current,
            1 => current + 1,
            back => current.saturating_sub(back as u64 - 1),
        });
        (buckets, (current + 1) * width + ttl)
    }
}

/// Seconds since the Unix epoch, by this machine's clock.
pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::redis_store::every_kind;

    fn keys() -> Keys {
        Keys::new("ns", Duration::from_secs(3600))
    }

    #[test]
    fn record_keys_name_the_kind_and_the_codes() {
        let expected = [
            (AggregateKey::carrier("XPO"), "ns:carrier:XPO"),
            (AggregateKey::lane("ATL", "JFK"), "ns:lane:ATL:JFK"),
            (
                AggregateKey::carrier_lane("XPO", "ATL", "JFK"),
                "ns:carrier_lane_shipments:XPO:ATL:JFK",
            ),
            (AggregateKey::site("ATL"), "ns:site:ATL"),
            (
                AggregateKey::inventory("ATL", "SKU-1"),
                "ns:inventory:ATL:SKU-1",
            ),
            (AggregateKey::origin("ATL"), "ns:origin:ATL"),
            (AggregateKey::destination("JFK"), "ns:destination:JFK"),
            (
                AggregateKey::site_region("ATL", "NE"),
                "ns:site_region_orders:ATL:NE",
            ),
            (AggregateKey::departures("ATL"), "ns:departures:ATL"),
            (
                AggregateKey::carrier_departures("XPO", "ATL"),
                "ns:carrier_departures:XPO:ATL",
            ),
            (
                AggregateKey::departure_slot("ATL", 985_000),
                "ns:departure_slot:ATL:985000",
            ),
            (
                AggregateKey::carrier_network_departures("XPO"),
                "ns:carrier_network_departures:XPO",
            ),
            (AggregateKey::departures_to("JFK"), "ns:departures_to:JFK"),
            (AggregateKey::arrivals("JFK"), "ns:arrivals:JFK"),
            (AggregateKey::site_history("ATL"), "ns:site_history:ATL"),
            (AggregateKey::order_network(), "ns:order_network:all"),
            (
                AggregateKey::carrier_exceptions("XPO", "JFK"),
                "ns:carrier_exceptions:XPO:JFK",
            ),
            (AggregateKey::exceptions_to("JFK"), "ns:exceptions_to:JFK"),
            (AggregateKey::site_flow("ATL"), "ns:site_flow:ATL"),
            (
                AggregateKey::carrier_region_alert("XPO", "JFK"),
                "ns:disruption:carrier_region:XPO:JFK",
            ),
            (
                AggregateKey::lane_alert("ATL", "JFK"),
                "ns:disruption:lane:ATL:JFK",
            ),
            (
                AggregateKey::inbound_alert("JFK"),
                "ns:disruption:inbound:JFK",
            ),
        ];
        let kinds: std::collections::HashSet<_> = expected.iter().map(|(k, _)| k.kind).collect();
        assert_eq!(kinds.len(), every_kind().len(), "every kind is checked");
        for (key, expected) in &expected {
            assert_eq!(keys().record(key), *expected);
        }
    }

    #[test]
    fn set_and_hash_keys() {
        let keys = Keys::new("detour-7", Duration::from_secs(3600));
        assert_eq!(keys.seen(1_969_000), "detour-7:seen:1969000");
        assert_eq!(keys.entities(1_969_000), "detour-7:entities:1969000");
        assert_eq!(
            keys.lane_carriers("ATL", "JFK"),
            "detour-7:lane_carriers:ATL:JFK"
        );
    }

    #[test]
    fn round_markers_are_namespaced_and_never_repeat() {
        let (a, b) = (keys().round_marker(), keys().round_marker());
        let prefix = format!("ns:refused:{}:", std::process::id());
        assert!(a.starts_with(&prefix), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn buckets_are_a_quarter_of_the_ttl_current_then_next_then_four_back() {
        // TTL 3600 s: buckets of 900 s.
        let (buckets, expire_at) = keys().buckets(900 * 100 + 17);
        assert_eq!(buckets, [100, 101, 99, 98, 97, 96]);
        assert_eq!(expire_at, 101 * 900 + 3600, "a TTL after the bucket ends");
        // The boundaries: the last second of a bucket, and the first of the next.
        assert_eq!(keys().buckets(900 * 100 - 1).0[0], 99);
        assert_eq!(keys().buckets(900 * 100).0[0], 100);
        // A TTL not divisible by four rounds the width up; a TTL under a second
        // counts as one.
        let odd = Keys::new("ns", Duration::from_secs(10));
        assert_eq!(odd.buckets(30), ([10, 11, 9, 8, 7, 6], 11 * 3 + 10));
        let tiny = Keys::new("ns", Duration::from_millis(10));
        assert_eq!(tiny.buckets(5), ([5, 6, 4, 3, 2, 1], 6 + 1));
        // Near the epoch, the buckets before the first are the first.
        assert_eq!(keys().buckets(0).0, [0, 1, 0, 0, 0, 0]);
    }

    /// Whatever a replica writes is found by every read within the TTL after
    /// it, and by a replica whose clock is behind by less than a bucket.
    #[test]
    fn buckets_cover_the_ttl_and_a_clock_ahead() {
        let keys = keys();
        let ttl = 3600;
        let width = ttl / 4;
        for written in (1_773_000_000..1_773_000_000 + 3 * ttl).step_by(97) {
            let (at_write, expire_at) = keys.buckets(written);
            assert!(expire_at >= written + ttl, "kept for the TTL");
            assert!(expire_at <= written + ttl + width + 1, "not much longer");
            for later in (written..written + ttl).step_by(61) {
                assert!(
                    keys.buckets(later).0.contains(&at_write[0]),
                    "{written} read at {later}"
                );
            }
            for behind in [1, width / 2, width - 1] {
                assert!(keys.buckets(written - behind).0.contains(&at_write[0]));
            }
        }
    }
}
