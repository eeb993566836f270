//! Point-in-time datasets: replays history in event-time order through the
//! service's own feature code (an `InMemoryFeatureStore`, `features::updates` and
//! `scoring::feature_vector`) and records each decision's feature vector at its
//! decision time, before anything later is applied.
//!
//! Decision times: a shipment some hours before its scheduled departure (0 to 48,
//! fixed per shipment, with the lead time a feature — the horizon a reroute is
//! decided at), and with [`ReplaySettings::also_at_departure`] (training) at its
//! scheduled departure too; an order at its creation, a site at each snapshot
//! (after applying that snapshot). Each stage of a leg is applied when it happened: it
//! is announced [`ReplaySettings::announced_hours`] before its scheduled
//! departure (an export holds no announcement time), it leaves at its actual
//! departure (or is cancelled at its scheduled one), and its outcome counts at
//! its arrival — except that a leg that left early counts as gone only after
//! its own decisions; an order's outcome at its promise time. At equal times,
//! decisions come before every event but a site's snapshot (a site is decided
//! on the snapshot it is given), so nothing known only later leaks in.
//!
//! With [`ReplaySettings::alerts`], the history first goes through the
//! service's ingest and anomaly monitor ([`crate::service_replay`]), and each
//! alert change is applied to its disruption record at its event time
//! (after the decisions of that instant), as the service applies it when
//! committed: the carrier model's alert features see what was open.

use std::collections::HashMap;
use std::time::Duration;

use detour::domain::{Order, Shipment, SiteSnapshot, Timestamp};
use detour::features::updates::{
    LegFacts, leg_facts, order_created_update, order_outcome_updates, snapshot_update,
};
use detour::features::vectors::Gaps;
use detour::features::{AggregateKey, FeatureSettings, InMemoryFeatureStore};
use detour::network::Network;
use detour::schema::FeatureVector;
use detour::schema::RiskKind;
use detour::scoring::{ScoreTarget, feature_vector};

/// Everything read from an export.
#[derive(Debug, Default)]
pub struct History {
    pub shipments: Vec<Shipment>,
    pub orders: Vec<Order>,
    pub snapshots: Vec<SiteSnapshot>,
    pub network: Network,
}

/// One labelled decision.
#[derive(Debug, Clone)]
pub struct Row {
    pub at: Timestamp,
    pub entity_id: String,
    pub features: FeatureVector,
    pub label: bool,
    /// Whether `label` is a known outcome.
    pub labelled: bool,
    /// For a shipment, hours from the decision to its scheduled departure.
    pub lead_hours: Option<f64>,
}

/// Labelled decisions per family, each in time order.
#[derive(Debug, Default)]
pub struct Datasets {
    pub rows: HashMap<RiskKind, Vec<Row>>,
    /// Decisions left out, and why (e.g. "site_congestion: site not in network.toml").
    pub skipped: HashMap<String, usize>,
}

/// How to replay.
#[derive(Debug, Clone, Copy)]
pub struct ReplaySettings {
    pub features: FeatureSettings,
    /// Congestion horizon: a site is congested at `t` if its backlog exceeds its
    /// limit at any snapshot in `(t, t + horizon]`.
    pub congestion_horizon_hours: f64,
    /// Only what is known by this time is used: later events are not replayed and
    /// decisions whose outcome is known later are left out.
    pub until: Option<Timestamp>,
    /// Decisions from this time on are recorded (history before only warms up the
    /// aggregates).
    pub record_from: Option<Timestamp>,
    /// Record decisions whose outcome is unknown too (label `false`, `labelled`
    /// unset), for scoring a period rather than training on it.
    pub unlabelled: bool,
    /// Decide every shipment this many hours before departure, instead of the
    /// per-shipment lead of [`lead_hours`].
    pub shipment_lead_hours: Option<f64>,
    /// Also decide every shipment at its scheduled departure (lead 0) when its
    /// own lead is another: training data in which the horizon with the most
    /// signal — the network's state as the leg is due — learns from every leg.
    pub also_at_departure: bool,

    /// How long before its scheduled departure a leg is known to be planned
    /// (it counts in the schedule of its slots from then on).
    pub announced_hours: f64,

    /// Also run history through the service's ingest and anomaly monitor
    /// first ([`crate::service_replay`]) and apply each alert change to its
    /// disruption record at the change's event time, as the service does
    /// when it commits one: decisions then see the alerts open at their
    /// time. Without, no alert is ever open (the alert features are 0).
    pub alerts: bool,
}

impl ReplaySettings {
    /// How `train` replays (and `dataset` with it, so that it writes the
    /// very rows `train` fits on): labelled decisions only, every shipment
    /// at its own lead (or `lead_hours`) and at its departure.
    pub fn training(
        sla_grace_minutes: f64,
        congestion_horizon_hours: f64,
        until: Option<Timestamp>,
        lead_hours: Option<f64>,
        announced_hours: f64,
        alerts: bool,
    ) -> Self {
        ReplaySettings {
            features: FeatureSettings { sla_grace_minutes },
            congestion_horizon_hours,
            until,
            record_from: None,
            unlabelled: false,
            shipment_lead_hours: lead_hours,
            also_at_departure: true,
            announced_hours,
            alerts,
        }
    }
}

/// Legs are taken as announced this long before they leave, unless told
/// otherwise: a week, as a carrier's timetable or a shipper's plan would be.
pub const DEFAULT_ANNOUNCED_HOURS: f64 = 7.0 * 24.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    // Declaration order is the order at equal times.
    ApplySnapshot,
    DecideSite,
    DecideOrder,
    DecideShipment,
    ApplyOrderCreated,
    ApplyOrderOutcome,
    ApplyLegPlanned,
    ApplyLegGone,
    ApplyShipmentOutcome,
    ApplyAlert,
}

/// A decision point met while walking history: which entity (by index into
/// [`History`]) and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Shipment(usize, Timestamp),
    Order(usize, Timestamp),
    Site(usize, Timestamp),
}

/// Walks history in event-time order through an in-memory store, calling
/// `on_decision` at every decision point from `record_from` on, with the store
/// holding exactly what was known at that moment.
pub fn walk(
    history: &History,
    settings: &ReplaySettings,
    on_decision: &mut dyn FnMut(Decision, &InMemoryFeatureStore),
) {
    let until = settings.until.unwrap_or(Timestamp(i64::MAX));
    let record_from = settings.record_from.unwrap_or(Timestamp(i64::MIN));
    let mut steps: Vec<(Timestamp, Step, u32)> = Vec::with_capacity(
        history.shipments.len() * 2 + history.orders.len() * 3 + history.snapshots.len() * 2,
    );
    let legs: Vec<LegFacts> = history
        .shipments
        .iter()
        .map(|s| leg_facts(s, &settings.features))
        .collect();
    for (i, s) in history.shipments.iter().enumerate() {
        let lead = settings
            .shipment_lead_hours
            .unwrap_or_else(|| lead_hours(&s.shipment_id));
        let decided = s.scheduled_departure.plus_minutes(-60.0 * lead);
        steps.push((decided, Step::DecideShipment, i as u32));
        let mut last_decided = decided;
        if settings.also_at_departure && lead != 0.0 {
            steps.push((s.scheduled_departure, Step::DecideShipment, i as u32));
            last_decided = last_decided.max(s.scheduled_departure);
        }
        let announced = s
            .scheduled_departure
            .plus_minutes(-60.0 * settings.announced_hours);
        steps.push((announced, Step::ApplyLegPlanned, i as u32));
        let leg = &legs[i];
        // A leg that left early counts as gone only once its own decisions
        // are taken: a decision about a leg already gone is no decision, and
        // its own departure would tell it its outcome (most legs that leave
        // early arrive on time). Others' decisions in between see it later
        // than they could; serving sees it at once.
        if let Some((at, _)) = leg.gone {
            steps.push((at.max(last_decided), Step::ApplyLegGone, i as u32));
        }
        if let Some((at, _)) = leg.done {
            steps.push((at, Step::ApplyShipmentOutcome, i as u32));
        }
    }
    for (i, o) in history.orders.iter().enumerate() {
        steps.push((o.created_at, Step::DecideOrder, i as u32));
        steps.push((o.created_at, Step::ApplyOrderCreated, i as u32));
        if o.outcome.is_some() {
            steps.push((o.promise_at, Step::ApplyOrderOutcome, i as u32));
        }
    }
    for (i, s) in history.snapshots.iter().enumerate() {
        steps.push((s.at, Step::ApplySnapshot, i as u32));
        steps.push((s.at, Step::DecideSite, i as u32));
    }
    let alerts = if settings.alerts {
        crate::service_replay::disruption_updates(history, until)
    } else {
        Vec::new()
    };
    for (i, update) in alerts.iter().enumerate() {
        steps.push((
            Timestamp((update.at * 1000.0) as i64),
            Step::ApplyAlert,
            i as u32,
        ));
    }
    steps.retain(|(at, _, _)| *at <= until);
    steps.sort_unstable();
    let store = InMemoryFeatureStore::new(Duration::from_secs(1));
    let progress_every = (steps.len() / 10).max(1);
    for (n, &(at, step, i)) in steps.iter().enumerate() {
        if n % progress_every == 0 && n > 0 {
            eprintln!(
                "  replay: {}% ({n} of {} steps)",
                n * 100 / steps.len(),
                steps.len()
            );
        }
        let i = i as usize;
        match step {
            Step::ApplySnapshot => store.apply_updates(&[snapshot_update(&history.snapshots[i])]),
            Step::ApplyOrderCreated => {
                store.apply_updates(&[order_created_update(&history.orders[i])])
            }
            Step::ApplyOrderOutcome => {
                let order = &history.orders[i];
                let outcome = order.outcome.expect("only finished orders get this step");
                store.apply_updates(&order_outcome_updates(order, outcome));
            }
            Step::ApplyLegPlanned => store.apply_updates(&legs[i].planned.updates),
            Step::ApplyLegGone => {
                let (_, fact) = legs[i]
                    .gone
                    .as_ref()
                    .expect("only legs that left get this step");
                store.apply_updates(&fact.updates);
            }
            Step::ApplyShipmentOutcome => {
                let (_, fact) = legs[i]
                    .done
                    .as_ref()
                    .expect("only finished legs get this step");
                store.apply_updates(&fact.updates);
            }
            Step::ApplyAlert => store.apply_updates(std::slice::from_ref(&alerts[i])),
            _ if at < record_from => {}
            Step::DecideShipment => on_decision(Decision::Shipment(i, at), &store),
            Step::DecideOrder => on_decision(Decision::Order(i, at), &store),
            Step::DecideSite => on_decision(Decision::Site(i, at), &store),
        }
    }
}

/// Replays `history` and returns the labelled decisions of every family.
pub fn replay(history: &History, settings: &ReplaySettings) -> Datasets {
    let until = settings.until.unwrap_or(Timestamp(i64::MAX));
    let grace = settings.features.sla_grace_minutes;
    // Training labels only what was known by the cut-off; scoring a period labels
    // each decision with its eventual outcome, where there is one.
    let label_until = if settings.unlabelled {
        Timestamp(i64::MAX)
    } else {
        until
    };
    let congestion = congestion_labels(history, settings.congestion_horizon_hours, label_until);
    let mut out = Datasets::default();
    let network = &history.network;
    let mut on_decision = |decision: Decision, store: &InMemoryFeatureStore| {
        let (kind, target, label) = match decision {
            Decision::Shipment(i, at) => {
                let shipment = &history.shipments[i];
                let label = shipment
                    .outcome(grace)
                    .filter(|o| o.known_at <= label_until)
                    .map(|o| o.failed);
                let target = ScoreTarget::Shipment {
                    shipment: shipment.clone(),
                    as_of: at,
                };
                (RiskKind::CarrierFailure, target, label)
            }
            Decision::Order(i, at) => {
                let order = &history.orders[i];
                let label = order
                    .outcome
                    .filter(|_| order.promise_at <= label_until)
                    .map(|o| o.is_fallout());
                let target = ScoreTarget::Order {
                    order: order.clone(),
                    as_of: at,
                };
                (RiskKind::OrderFallout, target, label)
            }
            Decision::Site(i, at) => {
                let label = match congestion[i] {
                    Ok(label) => Some(label),
                    Err(reason) if !settings.unlabelled => {
                        *out.skipped.entry(reason.to_string()).or_default() += 1;
                        return;
                    }
                    Err(_) => None,
                };
                let site = history.snapshots[i].site.clone();
                (
                    RiskKind::SiteCongestion,
                    ScoreTarget::Site { site, as_of: at },
                    label,
                )
            }
        };
        if label.is_none() && !settings.unlabelled {
            let reason = format!("{}: outcome not known by the cut-off", kind.name());
            *out.skipped.entry(reason).or_default() += 1;
            return;
        }
        let mut gaps = Gaps::default();
        let mut row = decide(store, network, &target, label.unwrap_or(false), &mut gaps);
        row.labelled = label.is_some();
        out.rows.entry(kind).or_default().push(row);
    };
    walk(history, settings, &mut on_decision);
    out
}

/// Leads (hours before departure) that shipment decisions are taken at, so the
/// carrier model learns every horizon a reroute is decided at.
pub const DECISION_LEADS_HOURS: [f64; 6] = [0.0, 2.0, 6.0, 12.0, 24.0, 48.0];

/// The lead a shipment's decision is replayed at: one of
/// [`DECISION_LEADS_HOURS`], fixed per shipment id (FNV-1a hash), so a rerun
/// builds the same dataset.
pub fn lead_hours(shipment_id: &str) -> f64 {
    let hash = shipment_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    DECISION_LEADS_HOURS[(hash % DECISION_LEADS_HOURS.len() as u64) as usize]
}

fn decide(
    store: &InMemoryFeatureStore,
    network: &Network,
    target: &ScoreTarget,
    label: bool,
    gaps: &mut Gaps,
) -> Row {
    let mut keys: Vec<AggregateKey> = Vec::with_capacity(detour::features::vectors::SHIPMENT_KEYS);
    target.push_keys(&mut keys);
    let records = store.fetch_now(&keys);
    let lookup = |key: &AggregateKey| {
        let index = keys.iter().position(|k| k == key).expect("key was fetched");
        Some(records[index].as_ref())
    };
    gaps.clear();
    let at = match target {
        ScoreTarget::Shipment { as_of, .. }
        | ScoreTarget::Order { as_of, .. }
        | ScoreTarget::Site { as_of, .. } => *as_of,
    };
    Row {
        at,
        entity_id: target.entity_id().to_string(),
        features: feature_vector(target, &lookup, network, gaps),
        label,
        labelled: true,
        lead_hours: match target {
            ScoreTarget::Shipment { shipment, as_of } => {
                Some(shipment.scheduled_departure.hours_since(*as_of))
            }
            _ => None,
        },
    }
}

/// For each snapshot: whether its site breaches its backlog limit within the
/// horizon after it, or why that cannot be told.
fn congestion_labels(
    history: &History,
    horizon_hours: f64,
    until: Timestamp,
) -> Vec<Result<bool, &'static str>> {
    let mut by_site: HashMap<&str, Vec<(Timestamp, f64)>> = HashMap::new();
    for s in &history.snapshots {
        if s.at <= until {
            by_site.entry(&s.site).or_default().push((s.at, s.backlog));
        }
    }
    for series in by_site.values_mut() {
        series.sort_by_key(|(at, _)| *at);
    }
    let horizon_ms = (horizon_hours * 3_600_000.0) as i64;
    history
        .snapshots
        .iter()
        .map(|s| {
            let limit = history
                .network
                .site(&s.site)
                .ok_or("site_congestion: site not in network.toml")?
                .backlog_limit;
            let series = &by_site
                .get(s.site.as_str())
                .ok_or("site_congestion: after the cut-off")?;
            let horizon_end = Timestamp(s.at.0 + horizon_ms);
            let last = series.last().map_or(s.at, |(at, _)| *at);
            if horizon_end > last {
                return Err("site_congestion: horizon runs past the data");
            }
            let start = series.partition_point(|(at, _)| *at <= s.at);
            Ok(series[start..]
                .iter()
                .take_while(|(at, _)| *at <= horizon_end)
                .any(|(_, backlog)| *backlog > limit))
        })
        .collect()
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod leakage;
