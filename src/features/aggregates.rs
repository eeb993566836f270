//! Online aggregates: what is kept per carrier, lane, carrier-lane, site,
//! inventory position and departure slot, and the arithmetic that updates and
//! reads it.
//!
//! Counters decay exponentially, each kind of record with its own three time
//! constants ([`AggregateKind::windows`]): outcomes over 1, 7 and 28 days,
//! departures over 1 hour, 3 hours and a day, a site's orders to a region over
//! 28 days, a year and all time, and the schedule of a departure slot not at
//! all. So "failures in the last week" or "late departures in the last hour" is
//! one number that needs no bucket scan and stays correct when events arrive
//! out of order. Gauges (a site's latest backlog) keep the newest value by event
//! time. The Redis backend runs the same arithmetic in `apply_event.lua`; a
//! parity test holds the two together.

/// Windows every counter of a record is kept over.
pub const WINDOW_COUNT: usize = 3;
/// Counter fields per record at most (counters × windows).
pub const MAX_COUNTER_FIELDS: usize = 6 * WINDOW_COUNT;
/// Gauge fields per record at most.
pub const MAX_GAUGES: usize = 4;
/// Minutes in a departure slot ([`AggregateKey::departure_slot`]).
pub const SLOT_MINUTES: i64 = 30;

/// A decay window: a counter incremented at `t` weighs `exp(-(now - t) / tau)` at `now`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Suffix of the stored field name ("1d").
    pub name: &'static str,
    /// Time constant in seconds.
    pub tau_secs: f64,
}

/// A time constant so long that nothing decays within any history (a plain
/// count; finite, so Lua reads it as a number).
pub const NO_DECAY_SECS: f64 = 1e300;

const fn window(name: &'static str, tau_secs: f64) -> Window {
    Window { name, tau_secs }
}

/// The windows of outcome records (carrier, lane, origin,
/// destination) and of sites.
pub const WINDOWS: [Window; WINDOW_COUNT] = [
    window("1d", 86_400.0),
    window("7d", 7.0 * 86_400.0),
    window("28d", 28.0 * 86_400.0),
];
/// The windows of a carrier-lane's record: all time (long memory for a
/// carrier seen a few times on a lane), then the week and four weeks of the
/// other outcome records, at the same places, so [`WindowId::WEEK`] and
/// [`WindowId::MONTH`] read it as they read those.
pub const CARRIER_LANE_WINDOWS: [Window; WINDOW_COUNT] = [
    window("all", NO_DECAY_SECS),
    window("7d", 7.0 * 86_400.0),
    window("28d", 28.0 * 86_400.0),
];
/// The windows of departure records: what happened in the last hours.
pub const DEPARTURE_WINDOWS: [Window; WINDOW_COUNT] = [
    window("1h", 3_600.0),
    window("3h", 3.0 * 3_600.0),
    window("1d", 86_400.0),
];
/// The windows of a site's record for one region: long memory for sparse pairs.
pub const PAIR_WINDOWS: [Window; WINDOW_COUNT] = [
    window("1y", 365.0 * 86_400.0),
    window("all", NO_DECAY_SECS),
    window("28d", 28.0 * 86_400.0),
];
/// The windows of slots: plain counts.
pub const SLOT_WINDOWS: [Window; WINDOW_COUNT] = [
    window("n", NO_DECAY_SECS),
    window("n2", NO_DECAY_SECS),
    window("n3", NO_DECAY_SECS),
];

/// A window to read a counter in: its position in the record's kind's
/// [`AggregateKind::windows`] and its time constant. Read a record only in
/// the windows of its kind (the constants below say which).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowId {
    /// Position in the kind's windows.
    pub index: usize,
    /// Time constant in seconds.
    pub tau_secs: f64,
}

impl WindowId {
    const fn of(windows: &[Window; WINDOW_COUNT], index: usize) -> Self {
        WindowId {
            index,
            tau_secs: windows[index].tau_secs,
        }
    }
    /// Outcome records and sites: the last day.
    pub const DAY: WindowId = WindowId::of(&WINDOWS, 0);
    /// Outcome records and sites: the last week.
    pub const WEEK: WindowId = WindowId::of(&WINDOWS, 1);
    /// Outcome records and sites, and a site's record for a region: the last 28 days.
    pub const MONTH: WindowId = WindowId::of(&WINDOWS, 2);
    /// Departure records: the last hour.
    pub const HOUR: WindowId = WindowId::of(&DEPARTURE_WINDOWS, 0);
    /// Departure records: the last three hours.
    pub const THREE_HOURS: WindowId = WindowId::of(&DEPARTURE_WINDOWS, 1);
    /// Departure records: the last day.
    pub const DEPARTURE_DAY: WindowId = WindowId::of(&DEPARTURE_WINDOWS, 2);
    /// A site's record for a region: the last year.
    pub const YEAR: WindowId = WindowId::of(&PAIR_WINDOWS, 0);
    /// A site's record for a region: all time.
    pub const ALL_TIME: WindowId = WindowId::of(&PAIR_WINDOWS, 1);
    /// Slots: the count.
    pub const COUNT: WindowId = WindowId::of(&SLOT_WINDOWS, 0);
    /// A carrier-lane's record: all time.
    pub const CARRIER_LANE_ALL_TIME: WindowId = WindowId::of(&CARRIER_LANE_WINDOWS, 0);
}

mod kinds;

pub use kinds::{
    AggregateKey, AggregateKind, ON_HAND, disruption_gauges, flow_counters, movement_counters,
    shipment_counters, site_fields, site_region_counters, slot_counters, slot_fraction, slot_of,
};

/// The stored state of one record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AggregateRecord {
    /// Event time (epoch seconds) the counters were last decayed to; `None`
    /// before the first update (and always for a kind with no counters).
    pub counters_at: Option<f64>,
    /// Counter `c` in window `w` at index `c * WINDOWS.len() + w`.
    pub counters: [f64; MAX_COUNTER_FIELDS],
    /// Event time (epoch seconds) of the newest gauge values; `None` until an
    /// update carries gauges (a site snapshot or a stock count).
    pub gauges_at: Option<f64>,
    /// Gauge values, indexes as in [`AggregateKind::gauges`]; unused slots are 0.
    pub gauges: [f64; MAX_GAUGES],
}

impl Default for AggregateRecord {
    fn default() -> Self {
        AggregateRecord {
            counters_at: None,
            counters: [0.0; MAX_COUNTER_FIELDS],
            gauges_at: None,
            gauges: [0.0; MAX_GAUGES],
        }
    }
}

/// One event's change to one record.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateUpdate {
    /// The record it changes.
    pub key: AggregateKey,
    /// Event time, epoch seconds.
    pub at: f64,
    /// Added to every window of counter `c` (indexes as in [`AggregateKind::counters`]).
    pub increments: [f64; MAX_COUNTER_FIELDS / WINDOWS.len()],
    /// New gauge values, kept if `at` is not older than the stored ones.
    pub gauges: Option<[f64; MAX_GAUGES]>,
}

impl AggregateRecord {
    /// Counter `counter` in `window` (one of the record's kind's), decayed to
    /// `now` (not grown when `now` is earlier than the last update).
    pub fn counter(&self, counter: usize, window: WindowId, now: f64) -> f64 {
        let Some(at) = self.counters_at else {
            return 0.0;
        };
        let value = self.counters[counter * WINDOW_COUNT + window.index];
        if now > at {
            value * (-(now - at) / window.tau_secs).exp()
        } else {
            value
        }
    }

    /// A gauge's newest value and its event time, if any snapshot was seen.
    pub fn gauge(&self, gauge: usize) -> Option<(f64, f64)> {
        self.gauges_at.map(|at| (self.gauges[gauge], at))
    }

    /// Applies one update: merges the record of that update alone.
    pub fn apply(&mut self, kind: AggregateKind, update: &AggregateUpdate) {
        self.merge(kind, &AggregateRecord::of_update(kind, update));
    }

    /// The record that one update alone would leave behind.
    pub fn of_update(kind: AggregateKind, update: &AggregateUpdate) -> AggregateRecord {
        let counters = kind.counters().len();
        let mut record = AggregateRecord::default();
        if counters > 0 {
            record.counters_at = Some(update.at);
            for c in 0..counters {
                record.counters[c * WINDOW_COUNT..(c + 1) * WINDOW_COUNT]
                    .fill(update.increments[c]);
            }
        }
        if let Some(gauges) = update.gauges {
            record.gauges = gauges;
            record.gauges_at = Some(update.at);
        }
        record
    }

    /// Folds `later` — the record of some further events — into this one, as if
    /// those events had been applied here one by one: counters decayed to the
    /// newer clock and added (an older `later` is discounted to this clock), the
    /// newer gauges kept (ties go to `later`). Merging is associative, so a batch
    /// of events can be folded into one record first and merged once. The Lua
    /// script in the Redis backend mirrors this exactly.
    pub fn merge(&mut self, kind: AggregateKind, later: &AggregateRecord) {
        let counters = kind.counters().len();
        if counters > 0
            && let Some(at) = later.counters_at
        {
            match self.counters_at {
                Some(last) if at < last => {
                    for (w, window) in kind.windows().iter().enumerate() {
                        let weight = (-(last - at) / window.tau_secs).exp();
                        for c in 0..counters {
                            let i = c * WINDOW_COUNT + w;
                            self.counters[i] += later.counters[i] * weight;
                        }
                    }
                }
                last => {
                    for (w, window) in kind.windows().iter().enumerate() {
                        let decay = last.map_or(0.0, |last| (-(at - last) / window.tau_secs).exp());
                        for c in 0..counters {
                            let i = c * WINDOW_COUNT + w;
                            self.counters[i] = self.counters[i] * decay + later.counters[i];
                        }
                    }
                    self.counters_at = Some(at);
                }
            }
        }
        if let Some(at) = later.gauges_at
            && self.gauges_at.is_none_or(|last| at >= last)
        {
            self.gauges = later.gauges;
            self.gauges_at = Some(at);
        }
    }
}

/// The stored field names of a kind, in the order the Redis backend reads them:
/// the counter clock `t`, every counter × window as `{counter}_{window}`, the gauge
/// clock `gt`, then every gauge.
pub fn field_names(kind: AggregateKind) -> Vec<String> {
    let mut names = vec!["t".to_string()];
    for counter in kind.counters() {
        for window in kind.windows() {
            names.push(format!("{counter}_{}", window.name));
        }
    }
    names.push("gt".to_string());
    names.extend(kind.gauges().iter().map(|g| g.to_string()));
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(at: f64, failed: f64) -> AggregateUpdate {
        AggregateUpdate {
            key: AggregateKey::carrier("XPO"),
            at,
            increments: [1.0, failed, 0.0, 0.0, 0.0, 0.0],
            gauges: None,
        }
    }

    /// The number of variants: adding one stops this compiling until it is
    /// counted here, and the test below then fails until it is in `ALL`.
    fn variants(kind: AggregateKind) -> usize {
        use AggregateKind::*;
        match kind {
            Carrier
            | Lane
            | CarrierLane
            | Site
            | Inventory
            | Origin
            | Destination
            | SiteRegion
            | Departures
            | CarrierDepartures
            | CarrierNetworkDepartures
            | DeparturesTo
            | Arrivals
            | SiteHistory
            | OrderNetwork
            | DepartureSlot
            | CarrierExceptions
            | ExceptionsTo
            | SiteFlow
            | Disruption => 20,
        }
    }

    #[test]
    fn every_kind_is_listed_once_at_its_index() {
        assert_eq!(AggregateKind::ALL.len(), variants(AggregateKind::Carrier));
        for (index, kind) in AggregateKind::ALL.into_iter().enumerate() {
            assert_eq!(kind.index(), index);
        }
        // Each reading window is one of its kinds' windows.
        let reads = [
            (WindowId::DAY, AggregateKind::Carrier),
            (WindowId::WEEK, AggregateKind::Carrier),
            (WindowId::MONTH, AggregateKind::Carrier),
            (WindowId::MONTH, AggregateKind::SiteRegion),
            (WindowId::WEEK, AggregateKind::CarrierLane),
            (WindowId::MONTH, AggregateKind::CarrierLane),
            (WindowId::CARRIER_LANE_ALL_TIME, AggregateKind::CarrierLane),
            (WindowId::YEAR, AggregateKind::SiteRegion),
            (WindowId::ALL_TIME, AggregateKind::SiteRegion),
            (WindowId::HOUR, AggregateKind::Departures),
            (WindowId::THREE_HOURS, AggregateKind::CarrierDepartures),
            (WindowId::DEPARTURE_DAY, AggregateKind::Departures),
            (WindowId::COUNT, AggregateKind::DepartureSlot),
        ];
        for (window, kind) in reads {
            assert_eq!(
                kind.windows()[window.index].tau_secs,
                window.tau_secs,
                "{kind:?}"
            );
        }
    }

    #[test]
    fn counters_decay_with_their_window() {
        let mut record = AggregateRecord::default();
        record.apply(AggregateKind::Carrier, &update(0.0, 1.0));
        let one_day = 86_400.0;
        let day = record.counter(shipment_counters::FAILED, WindowId::DAY, one_day);
        let week = record.counter(shipment_counters::FAILED, WindowId::WEEK, one_day);
        assert!((day - (-1.0f64).exp()).abs() < 1e-12);
        assert!((week - (-1.0f64 / 7.0).exp()).abs() < 1e-12);
    }

    #[test]
    fn order_of_arrival_does_not_change_the_result() {
        let mut in_order = AggregateRecord::default();
        let mut reversed = AggregateRecord::default();
        let events = [
            update(100.0, 1.0),
            update(5_000.0, 0.0),
            update(90_000.0, 1.0),
        ];
        for event in &events {
            in_order.apply(AggregateKind::Carrier, event);
        }
        for event in events.iter().rev() {
            reversed.apply(AggregateKind::Carrier, event);
        }
        for window in [WindowId::DAY, WindowId::WEEK, WindowId::MONTH] {
            let a = in_order.counter(shipment_counters::FAILED, window, 100_000.0);
            let b = reversed.counter(shipment_counters::FAILED, window, 100_000.0);
            assert!((a - b).abs() < 1e-9, "{window:?}: {a} vs {b}");
        }
    }

    #[test]
    fn older_gauges_do_not_overwrite_newer_ones() {
        let mut record = AggregateRecord::default();
        let snapshot = |at: f64, backlog: f64| AggregateUpdate {
            key: AggregateKey::site("ATL"),
            at,
            increments: [0.0; 6],
            gauges: Some([backlog, 0.0, 0.0, 0.0]),
        };
        record.apply(AggregateKind::Site, &snapshot(200.0, 50.0));
        record.apply(AggregateKind::Site, &snapshot(100.0, 10.0));
        assert_eq!(record.gauge(site_fields::BACKLOG), Some((50.0, 200.0)));
    }

    proptest::proptest! {
        /// Folding some events into one record and merging it gives what applying
        /// them one by one gives: the batched Redis write rests on this.
        #[test]
        fn folding_then_merging_equals_applying_one_by_one(
            events in proptest::collection::vec(
                (0.0f64..2e6, 0.0f64..3.0, proptest::option::of(0.0f64..100.0)),
                1..40,
            ),
            split in 0usize..40,
        ) {
            let kind = AggregateKind::Site;
            let updates: Vec<AggregateUpdate> = events
                .iter()
                .map(|&(at, orders, backlog)| AggregateUpdate {
                    key: AggregateKey::site("ATL"),
                    at: at.round(),
                    increments: [orders, 1.0, 0.0, orders * 0.5, 0.0, 0.0],
                    gauges: backlog.map(|b| [b, 1.0, 2.0, 3.0]),
                })
                .collect();
            let split = split.min(updates.len());
            let mut one_by_one = AggregateRecord::default();
            for update in &updates {
                one_by_one.apply(kind, update);
            }
            let mut merged = AggregateRecord::default();
            for update in &updates[..split] {
                merged.apply(kind, update);
            }
            let mut folded = AggregateRecord::default();
            for update in &updates[split..] {
                folded.apply(kind, update);
            }
            merged.merge(kind, &folded);
            proptest::prop_assert_eq!(merged.counters_at, one_by_one.counters_at);
            proptest::prop_assert_eq!(merged.gauges_at, one_by_one.gauges_at);
            proptest::prop_assert_eq!(merged.gauges, one_by_one.gauges);
            for (a, b) in merged.counters.iter().zip(&one_by_one.counters) {
                proptest::prop_assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{} vs {}", a, b);
            }
        }
    }
}
