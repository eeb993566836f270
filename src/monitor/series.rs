//! The series ingest keeps, and the points each applied change adds to them.
//! Per site: orders received per hour, backlog and units picked per
//! labour-hour at each snapshot. Per carrier × destination, per lane and
//! per destination: failed of finished legs. Per origin: late of departed
//! legs.
//!
//! Points come from the aggregate updates a store actually applied (not
//! duplicates, and each leg's outcome once, as the store counts it), so a
//! series counts exactly what the features count.

use crate::anomaly::{AnomalyKind, Direction, Entities};
use crate::domain::ShipmentStatus;
use crate::features::aggregates::{
    AggregateKind, AggregateUpdate, movement_counters, shipment_counters, site_fields,
};
use crate::features::entities::{Entity, EntityWrite};
use crate::features::updates::{Stage, parse_fact_id};
use crate::features::{ApplyOutcome, EventUpdates};

/// One series a replica watches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SeriesId {
    /// Orders a site received, per hour.
    SiteIntake(String),
    /// A site's backlog at each snapshot, judged by its growth.
    SiteBacklog(String),
    /// A site's units picked per labour-hour at each snapshot taken while
    /// orders waited.
    SiteThroughput(String),
    /// One carrier's finished legs into one region: failed of finished.
    CarrierRegion(String, String),
    /// One lane's finished legs over every carrier: failed of finished.
    Lane(String, String),
    /// Every finished leg into one location (all carriers, all origins):
    /// failed of finished — a closed hub or weather at the destination.
    Inbound(String),
    /// Every leg that left one location: late of departed — trouble at the
    /// origin shows here hours before any of its legs arrives.
    Outbound(String),
}

/// How a series' points are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Outcomes, tested as failed of finished over a rolling window against
    /// the series' own past rate.
    Rate,
    /// Events counted per hour, against the hour of the week.
    HourlyCount,
    /// A value at each point, against the hour of the week, in a direction.
    Gauge(Direction),
}

impl SeriesId {
    /// The series a key names (the inverse of [`SeriesId::key`]).
    pub fn parse(key: &str) -> Option<SeriesId> {
        let mut parts = key.split(':');
        let kind = parts.next()?;
        let mut code = || parts.next().filter(|c| !c.is_empty()).map(str::to_string);
        let id = match kind {
            "site_intake" => SeriesId::SiteIntake(code()?),
            "site_backlog" => SeriesId::SiteBacklog(code()?),
            "site_throughput" => SeriesId::SiteThroughput(code()?),
            "carrier_region" => SeriesId::CarrierRegion(code()?, code()?),
            "lane" => SeriesId::Lane(code()?, code()?),
            "inbound" => SeriesId::Inbound(code()?),
            "outbound" => SeriesId::Outbound(code()?),
            _ => return None,
        };
        parts.next().is_none().then_some(id)
    }

    /// The series' key in a store ("carrier_region:UPS:SE").
    pub fn key(&self) -> String {
        match self {
            SeriesId::SiteIntake(site) => format!("site_intake:{site}"),
            SeriesId::SiteBacklog(site) => format!("site_backlog:{site}"),
            SeriesId::SiteThroughput(site) => format!("site_throughput:{site}"),
            SeriesId::CarrierRegion(carrier, region) => {
                format!("carrier_region:{carrier}:{region}")
            }
            SeriesId::Lane(origin, destination) => format!("lane:{origin}:{destination}"),
            SeriesId::Inbound(destination) => format!("inbound:{destination}"),
            SeriesId::Outbound(origin) => format!("outbound:{origin}"),
        }
    }

    /// The kind of anomaly an episode of this series is.
    pub fn kind(&self) -> AnomalyKind {
        match self {
            SeriesId::SiteIntake(_) => AnomalyKind::DemandSpike,
            SeriesId::SiteBacklog(_) => AnomalyKind::QueueBuildUp,
            SeriesId::SiteThroughput(_) => AnomalyKind::ThroughputDrop,
            SeriesId::CarrierRegion(..) => AnomalyKind::RegionalCarrierDisruption,
            SeriesId::Lane(..) | SeriesId::Inbound(_) | SeriesId::Outbound(_) => {
                AnomalyKind::LaneDelay
            }
        }
    }

    /// How its points are judged.
    pub fn shape(&self) -> Shape {
        match self {
            SeriesId::SiteIntake(_) => Shape::HourlyCount,
            SeriesId::SiteBacklog(_) => Shape::Gauge(Direction::Up),
            SeriesId::SiteThroughput(_) => Shape::Gauge(Direction::Down),
            SeriesId::CarrierRegion(..)
            | SeriesId::Lane(..)
            | SeriesId::Inbound(_)
            | SeriesId::Outbound(_) => Shape::Rate,
        }
    }

    /// The entities it is about.
    pub fn entities(&self) -> Entities {
        let some = |code: &String| Some(code.clone());
        match self {
            SeriesId::SiteIntake(site)
            | SeriesId::SiteBacklog(site)
            | SeriesId::SiteThroughput(site) => Entities {
                site: some(site),
                ..Entities::default()
            },
            SeriesId::CarrierRegion(carrier, region) => Entities {
                carrier: some(carrier),
                region: some(region),
                ..Entities::default()
            },
            SeriesId::Lane(origin, destination) => Entities {
                origin: some(origin),
                destination: some(destination),
                ..Entities::default()
            },
            SeriesId::Inbound(destination) => Entities {
                destination: some(destination),
                ..Entities::default()
            },
            SeriesId::Outbound(origin) => Entities {
                origin: some(origin),
                ..Entities::default()
            },
        }
    }
}

/// One point of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Event time, Unix seconds.
    pub at: i64,
    /// What it adds.
    pub value: PointValue,
}

/// What a point adds to its series.
#[derive(Debug, Clone, PartialEq)]
pub enum PointValue {
    /// A finished leg, failed or not.
    Outcome {
        /// Cancelled, or late past the grace.
        failed: bool,
        /// The leg it is the outcome of, on a carrier-region series (whose
        /// overdue legs are counted before their outcomes come).
        leg: Option<std::sync::Arc<str>>,
    },
    /// One more event in its hour.
    Count,
    /// A value.
    Gauge(f64),
    /// Time moved on (the ingest clock, from a sweep) without points for
    /// this series: an open episode may end for want of evidence.
    Tick,
    /// The ingest clock, from a sweep, reached the time a leg of this
    /// carrier-region series becomes overdue: it counts as failed now.
    Due,
    /// A leg of the series' carrier into its region, as last reported:
    /// under way (or announced) until it finishes. Kept so that an alert
    /// can name the legs it puts at risk.
    Leg {
        /// The leg's id.
        id: std::sync::Arc<str>,
        /// When it is due to leave (Unix s).
        departure: i64,
        /// When it is due to arrive (Unix s): once it is overdue, its
        /// failure is known without waiting for its report.
        arrival: i64,
        /// When it left (Unix s; 0 if not reported): it is not known to be
        /// overdue before it is known to have left.
        left_at: i64,
        /// It has left.
        departed: bool,
        /// It finished (delivered or cancelled): no longer at risk.
        finished: bool,
    },
}

/// Hands `add` the points of every change a store applied, in run order
/// (not time order). `applied` is the store's answer for `run`.
pub fn points(
    run: &[EventUpdates],
    applied: &[ApplyOutcome],
    mut add: impl FnMut(SeriesId, Point),
) {
    let applied_events = run
        .iter()
        .zip(applied)
        .filter(|(_, outcome)| **outcome == ApplyOutcome::Applied);
    for (event, _) in applied_events {
        // A leg's outcome comes as its Done fact, whose id names the leg.
        let leg = match parse_fact_id(&event.event_id) {
            Some((Stage::Done, id)) => Some(std::sync::Arc::<str>::from(id)),
            _ => None,
        };
        for update in &event.updates {
            for (series, point) in points_of(update, leg.as_ref()) {
                add(series, point);
            }
        }
    }
    // Each leg's latest state, for the at-risk lists of its carrier's region.
    let legs = run
        .iter()
        .zip(applied)
        .filter(|(_, outcome)| **outcome == ApplyOutcome::Applied)
        .filter_map(|(event, _)| match &event.entity {
            Some(EntityWrite {
                entity: Entity::Shipment(leg),
                ..
            }) => Some(leg),
            _ => None,
        });
    for leg in legs {
        add(
            SeriesId::CarrierRegion(leg.carrier.clone(), leg.destination.clone()),
            Point {
                // Before the outcomes of the same flush: an alert they open
                // lists the legs as they now stand.
                at: i64::MIN,
                value: PointValue::Leg {
                    id: leg.shipment_id.as_str().into(),
                    departure: leg.scheduled_departure.0.div_euclid(1000),
                    arrival: leg.scheduled_arrival.0.div_euclid(1000),
                    left_at: leg.actual_departure.map_or(0, |t| t.0.div_euclid(1000)),
                    departed: leg.actual_departure.is_some(),
                    finished: matches!(
                        leg.status,
                        ShipmentStatus::Delivered | ShipmentStatus::Cancelled
                    ),
                },
            },
        );
    }
}

/// The points one applied update adds; `leg` is the leg whose outcome it
/// is, if it is one.
fn points_of(
    update: &AggregateUpdate,
    leg: Option<&std::sync::Arc<str>>,
) -> Vec<(SeriesId, Point)> {
    let at = update.at.floor() as i64;
    let point = |value| Point { at, value };
    match update.key.kind {
        // A finished leg is counted once in its carrier-lane record.
        AggregateKind::CarrierLane if update.increments[shipment_counters::DONE] > 0.0 => {
            let mut codes = update.key.id.split(':');
            let (Some(carrier), Some(origin), Some(destination)) =
                (codes.next(), codes.next(), codes.next())
            else {
                return Vec::new();
            };
            let failed = update.increments[shipment_counters::FAILED] > 0.0;
            let value = PointValue::Outcome { failed, leg: None };
            vec![
                (
                    SeriesId::CarrierRegion(carrier.to_string(), destination.to_string()),
                    point(PointValue::Outcome {
                        failed,
                        leg: leg.cloned(),
                    }),
                ),
                (
                    SeriesId::Lane(origin.to_string(), destination.to_string()),
                    point(value.clone()),
                ),
                (SeriesId::Inbound(destination.to_string()), point(value)),
            ]
        }
        // A leg that left is counted once in its origin's departures.
        AggregateKind::Departures if update.increments[movement_counters::MOVED] > 0.0 => {
            vec![(
                SeriesId::Outbound(update.key.id.clone()),
                point(PointValue::Outcome {
                    failed: update.increments[movement_counters::LATE] > 0.0,
                    leg: None,
                }),
            )]
        }
        AggregateKind::Site => {
            let site = &update.key.id;
            let mut out = Vec::new();
            if update.increments[site_fields::ORDERS] > 0.0 {
                out.push((SeriesId::SiteIntake(site.clone()), point(PointValue::Count)));
            }
            if let Some(gauges) = update.gauges {
                out.push((
                    SeriesId::SiteBacklog(site.clone()),
                    point(PointValue::Gauge(gauges[site_fields::BACKLOG])),
                ));
                // Output per labour-hour says something only while work
                // waits: an idle site picks what arrives.
                let labour = gauges[site_fields::LABOUR];
                if labour > 0.0 && gauges[site_fields::BACKLOG] > 0.0 {
                    out.push((
                        SeriesId::SiteThroughput(site.clone()),
                        point(PointValue::Gauge(
                            gauges[site_fields::PICKED_PER_HOUR] / labour,
                        )),
                    ));
                }
            }
            out
        }
        _ => Vec::new(),
    }
}
