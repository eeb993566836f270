//! Feature vectors: the ordered inputs of each model family, computed from stored
//! aggregates and the entity being scored. The trainer calls these same functions
//! while replaying history, so serving and training compute the same features.
//! (Serving then stands training priors in for missing values, which the
//! trainer fits on as they are: `detour-train train` prints how many rows that
//! differs on — for the shipped models none of the validation and test rows.)
//!
//! A value that cannot be known (store unreachable, no snapshot yet) is NaN:
//! missing, and the model stands the feature's training prior in for it
//! (`LoadedModel::imputed`). An entity with no history is not missing: its
//! counts are zero and its rates fall back to a prior. Either way the builders
//! record the gap in [`Gaps`], which decides whether the band can be trusted.

use crate::domain::{Order, OrderPriority, Timestamp};
use crate::network::Network;
use crate::schema::FeatureVector;

use super::aggregates::{
    AggregateKey, AggregateRecord, WindowId, shipment_counters as sc, site_fields as sf,
    site_region_counters as src,
};

mod shipment;

pub use shipment::{
    BACKLOG_SLOTS, SHIPMENT_KEYS, carrier_failure_vector, lead_time_hours, shipment_keys,
};

/// A snapshot older than this makes the answer degraded.
pub const STALE_SNAPSHOT_HOURS: f64 = 6.0;
/// Pseudo-observations that pull a rate towards its prior when history is thin.
pub const PRIOR_WEIGHT: f64 = 2.0;
/// Failure rate of a carrier on a lane before any history: the prior of every
/// failure-rate feature (and of the trainer's naive baselines, which must follow it).
pub const PRIOR_FAILURE_RATE: f64 = 0.1;
/// About an eighth of failures are cancellations.
const PRIOR_CANCEL_RATE: f64 = 0.0125;
const PRIOR_FALLOUT_RATE: f64 = 0.15;
/// What the store answered for a key: `None` when the store could not be read.
pub type Lookup<'a> = Option<Option<&'a AggregateRecord>>;

/// What an answer's inputs lacked: one reason per gap, and whether a gap is in
/// the state the family leans on most (the site's snapshot for sites and
/// orders, the carrier's record for legs, any of it when the store is
/// unreachable). Such an answer's band is `Unknown`: its probability is the
/// model's with the missing inputs at their training priors, a best guess
/// that must not read as an alarm.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gaps {
    /// One line per gap, for `degraded_reasons`.
    pub reasons: Vec<String>,
    /// Whether the state that matters most is missing or stale.
    pub decisive: bool,
}

impl Gaps {
    /// A gap the answer can bear: defaults or priors stood in for a minor input.
    pub fn note(&mut self, reason: String) {
        self.reasons.push(reason);
    }

    /// A gap in the state the family leans on most: the band becomes unknown.
    pub fn decisive(&mut self, reason: String) {
        self.reasons.push(reason);
        self.decisive = true;
    }

    /// Forgets every gap, keeping the allocation.
    pub fn clear(&mut self) {
        self.reasons.clear();
        self.decisive = false;
    }
}

/// Keys an order's features read: its site, the lane from the site to the
/// order's destination (shipments over all carriers), the site's past orders
/// for that destination, and the long records of the site and the network.
pub fn order_keys(order: &Order) -> [AggregateKey; ORDER_KEYS] {
    [
        AggregateKey::site(&order.site),
        AggregateKey::lane(&order.site, &order.destination_region),
        AggregateKey::site_region(&order.site, &order.destination_region),
        AggregateKey::site_history(&order.site),
        AggregateKey::order_network(),
    ]
}

/// Records an order's features read ([`order_keys`]).
pub const ORDER_KEYS: usize = 5;
/// Pseudo-orders that pull a site's long record towards the network's.
const SITE_SHRINKAGE: f64 = 10.0;
/// Pseudo-orders that pull a site-region pair's long record towards its
/// site's: lightly (the pair's own record, barely smoothed) and heavily (the
/// pair's record trusted only once it holds tens of orders). The model sees
/// both and the pair's volume, and so learns from the data how far to trust a
/// pair seen a few times a year. A carrier-lane's long record is shrunk
/// towards its lane's the same way.
const PAIR_SHRINKAGE: [f64; 2] = [1.0, 20.0];

/// A long record's rate, shrunk towards `prior` by `weight` pseudo-counts;
/// `prior` itself when the record is absent and NaN when unreadable. The
/// denominator is counter 0, finished orders or shipments alike.
fn long_rate(
    lookup: Lookup<'_>,
    numerator: usize,
    window: WindowId,
    t: f64,
    prior: f64,
    weight: f64,
) -> f64 {
    match lookup {
        None => f64::NAN,
        Some(None) => prior,
        Some(Some(r)) => {
            let hits = r.counter(numerator, window, t);
            const _: () = assert!(src::DONE == sc::DONE, "one denominator for both");
            let total = r.counter(src::DONE, window, t);
            (hits + weight * prior) / (total + weight)
        }
    }
}

/// Order-fallout features of an order, decided at `now`.
pub fn order_fallout_vector(
    order: &Order,
    now: Timestamp,
    lookups: [Lookup<'_>; ORDER_KEYS],
    network: &Network,
    gaps: &mut Gaps,
) -> FeatureVector {
    let [site_lookup, lane, pair, site_history, everyone] = lookups;
    let site = SiteView::new(&order.site, site_lookup, now, network);
    site.note_gaps(gaps);
    let t = now.as_secs_f64();
    let lane_rate =
        |window: WindowId| smoothed_rate(lane, sc::FAILED, sc::DONE, window, t, PRIOR_FAILURE_RATE);
    let (hour_sin, hour_cos, weekend) = clock_features(order.created_at);
    // Long memory, shrunk up the hierarchy: pair → site → network → prior.
    let all = WindowId::ALL_TIME;
    let network_fallout = long_rate(
        everyone,
        src::FALLOUT,
        all,
        t,
        PRIOR_FALLOUT_RATE,
        PRIOR_WEIGHT,
    );
    let network_late = long_rate(
        everyone,
        src::LATE,
        all,
        t,
        PRIOR_FALLOUT_RATE,
        PRIOR_WEIGHT,
    );
    let site_fallout = long_rate(
        site_history,
        src::FALLOUT,
        all,
        t,
        network_fallout,
        SITE_SHRINKAGE,
    );
    let site_late = long_rate(
        site_history,
        src::LATE,
        all,
        t,
        network_late,
        SITE_SHRINKAGE,
    );
    let [light, heavy] = PAIR_SHRINKAGE;
    FeatureVector::from_slice(&[
        site.backlog_to_limit,
        site.backlog_per_labour,
        site.dock_utilisation,
        site.backlog_vs_week_mean,
        site.fallout_rate_day,
        site.fallout_rate_week,
        site.late_rate_week,
        site.inflow_day_log,
        site.inflow_trend,
        lane_rate(WindowId::DAY),
        lane_rate(WindowId::WEEK),
        smoothed_rate(
            pair,
            src::FALLOUT,
            src::DONE,
            WindowId::MONTH,
            t,
            PRIOR_FALLOUT_RATE,
        ),
        pair.map_or(f64::NAN, |r| {
            r.map_or(0.0, |r| r.counter(src::DONE, WindowId::MONTH, t))
                .ln_1p()
        }),
        order.promise_at.hours_since(now),
        network
            .fastest_transit_hours(&order.site, &order.destination_region)
            .map_or(f64::NAN, |transit| {
                order.promise_at.hours_since(now) - transit
            }),
        f64::from(order.line_count),
        order.units.ln_1p(),
        f64::from(u8::from(order.priority == OrderPriority::Express)),
        hour_sin,
        hour_cos,
        weekend,
        long_rate(pair, src::FALLOUT, all, t, site_fallout, light),
        long_rate(pair, src::FALLOUT, all, t, site_fallout, heavy),
        long_rate(pair, src::LATE, all, t, site_late, heavy),
        long_rate(pair, src::FALLOUT, WindowId::YEAR, t, site_fallout, heavy),
        pair.map_or(f64::NAN, |r| {
            r.map_or(0.0, |r| r.counter(src::DONE, all, t)).ln_1p()
        }),
        site_fallout,
        network_fallout,
    ])
}

/// Keys a site's features read: the site.
pub fn site_keys(site: &str) -> [AggregateKey; 1] {
    [AggregateKey::site(site)]
}

/// Site-congestion features of a site at `now`.
pub fn site_congestion_vector(
    site_code: &str,
    now: Timestamp,
    lookups: [Lookup<'_>; 1],
    network: &Network,
    gaps: &mut Gaps,
) -> FeatureVector {
    let site = SiteView::new(site_code, lookups[0], now, network);
    site.note_gaps(gaps);
    let (hour_sin, hour_cos, weekend) = clock_features(now);
    FeatureVector::from_slice(&[
        site.backlog_to_limit,
        site.backlog_per_labour,
        site.labour,
        site.picked_per_hour,
        site.dock_utilisation,
        site.backlog_vs_week_mean,
        site.inflow_day_log,
        site.inflow_trend,
        site.fallout_rate_day,
        hour_sin,
        hour_cos,
        weekend,
        site.snapshot_age_hours,
    ])
}

/// A site's quantities at one moment, shared by the order and site families.
struct SiteView<'a> {
    code: &'a str,
    seen: Option<bool>,
    snapshot_age_hours: f64,
    backlog_to_limit: f64,
    backlog_per_labour: f64,
    labour: f64,
    picked_per_hour: f64,
    dock_utilisation: f64,
    backlog_vs_week_mean: f64,
    fallout_rate_day: f64,
    fallout_rate_week: f64,
    late_rate_week: f64,
    inflow_day_log: f64,
    inflow_trend: f64,
}

impl<'a> SiteView<'a> {
    fn new(code: &'a str, lookup: Lookup<'_>, now: Timestamp, network: &Network) -> Self {
        let t = now.as_secs_f64();
        let record = lookup.flatten();
        let gauge = |g: usize| record.and_then(|r| r.gauge(g)).map_or(f64::NAN, |(v, _)| v);
        let counter = |c: usize, w: WindowId| match lookup {
            None => f64::NAN,
            Some(r) => r.map_or(0.0, |r| r.counter(c, w, t)),
        };
        let backlog = gauge(sf::BACKLOG);
        let labour = gauge(sf::LABOUR);
        let snapshots_week = counter(sf::SNAPSHOTS, WindowId::WEEK);
        let mean_backlog = counter(sf::BACKLOG_SUM, WindowId::WEEK) / snapshots_week;
        let inflow_day = counter(sf::ORDERS, WindowId::DAY);
        let inflow_week = counter(sf::ORDERS, WindowId::WEEK);
        let fallout = |c: usize, w: WindowId| {
            smoothed_rate(lookup, c, sf::ORDERS_DONE, w, t, PRIOR_FALLOUT_RATE)
        };
        let limit = network.site(code).map_or(f64::NAN, |s| s.backlog_limit);
        SiteView {
            code,
            seen: lookup.map(|r| r.is_some()),
            snapshot_age_hours: record
                .and_then(|r| r.gauges_at)
                .map_or(f64::NAN, |at| ((t - at) / 3600.0).max(0.0)),
            backlog_to_limit: backlog / limit,
            backlog_per_labour: backlog / labour.max(1.0),
            labour,
            picked_per_hour: gauge(sf::PICKED_PER_HOUR),
            dock_utilisation: gauge(sf::DOCK_UTILISATION),
            backlog_vs_week_mean: if mean_backlog.is_finite() {
                backlog / mean_backlog.max(1.0)
            } else {
                f64::NAN
            },
            fallout_rate_day: fallout(sf::FALLOUT, WindowId::DAY),
            fallout_rate_week: fallout(sf::FALLOUT, WindowId::WEEK),
            late_rate_week: fallout(sf::LATE, WindowId::WEEK),
            inflow_day_log: inflow_day.ln_1p(),
            inflow_trend: inflow_day / (inflow_week / 7.0).max(1.0),
        }
    }

    /// The site's state is what sites and orders lean on most: any gap in it
    /// is decisive.
    fn note_gaps(&self, gaps: &mut Gaps) {
        if self.seen == Some(false) {
            gaps.decisive(format!("site {} has no history", self.code));
        } else if self.seen == Some(true) && self.snapshot_age_hours.is_nan() {
            gaps.decisive(format!("site {} has no snapshot", self.code));
        } else if self.snapshot_age_hours > STALE_SNAPSHOT_HOURS {
            gaps.decisive(format!(
                "site {} snapshot is {:.1} h old",
                self.code, self.snapshot_age_hours
            ));
        }
    }
}

/// `numerator / denominator` of a record's counters, pulled towards `prior` by
/// [`PRIOR_WEIGHT`] pseudo-observations; NaN when the store could not be read.
fn smoothed_rate(
    lookup: Lookup<'_>,
    numerator: usize,
    denominator: usize,
    window: WindowId,
    now: f64,
    prior: f64,
) -> f64 {
    match lookup {
        None => f64::NAN,
        Some(None) => prior,
        Some(Some(record)) => smoothed(
            record.counter(numerator, window, now),
            record.counter(denominator, window, now),
            prior,
        ),
    }
}

/// `hits / total` pulled towards `prior` by [`PRIOR_WEIGHT`] pseudo-observations:
/// every smoothed rate of the features, and the trainer's naive baselines.
pub fn smoothed(hits: f64, total: f64, prior: f64) -> f64 {
    (hits + PRIOR_WEIGHT * prior) / (total + PRIOR_WEIGHT)
}

/// Hour of day on the unit circle, and whether it is a weekend (UTC).
fn clock_features(at: Timestamp) -> (f64, f64, f64) {
    let angle = at.hour_of_day_utc() / 24.0 * std::f64::consts::TAU;
    (
        angle.sin(),
        angle.cos(),
        f64::from(u8::from(at.weekday_utc() >= 5)),
    )
}
