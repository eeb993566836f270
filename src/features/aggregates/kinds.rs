//! What a record is about: its kind (with its counters, gauges, windows and
//! lifetime), the codes that name it, and the half-hour departure slots.

use std::fmt;

use super::{
    CARRIER_LANE_WINDOWS, DEPARTURE_WINDOWS, PAIR_WINDOWS, SLOT_MINUTES, SLOT_WINDOWS,
    WINDOW_COUNT, WINDOWS, Window,
};

/// What a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AggregateKind {
    /// Shipments of one carrier, over all lanes.
    Carrier,
    /// Shipments from one origin to one destination, over all carriers.
    Lane,
    /// Shipments of one carrier on one lane.
    CarrierLane,
    /// Orders and snapshots of one site.
    Site,
    /// Stock of one SKU at one site.
    Inventory,
    /// Shipments leaving one location, over all carriers and destinations.
    Origin,
    /// Shipments arriving at one location, over all carriers and origins.
    Destination,
    /// Orders fulfilled from one site for one destination region.
    SiteRegion,
    /// Legs that left one location, over all carriers, by when they left.
    Departures,
    /// Legs of one carrier that left one location, by when they left.
    CarrierDepartures,
    /// Legs of one carrier that left anywhere, by when they left.
    CarrierNetworkDepartures,
    /// Legs bound for one location that left, by when they left.
    DeparturesTo,
    /// Legs that arrived at one location, by when they arrived.
    Arrivals,
    /// Orders fulfilled from one site, over a year and all time.
    SiteHistory,
    /// Orders fulfilled anywhere, over a year and all time (one record).
    OrderNetwork,
    /// Legs scheduled to leave one location within one slot of
    /// [`SLOT_MINUTES`]: how many were planned, and how many have gone.
    DepartureSlot,
    /// Legs of one carrier bound for one location that the carrier flagged
    /// (an exception, or an estimated arrival past the grace), by when.
    CarrierExceptions,
    /// Legs bound for one location flagged by their carriers, over all
    /// carriers.
    ExceptionsTo,
    /// The steps a site took its orders through, by when: allocated,
    /// released, picked, shipped.
    SiteFlow,
    /// The anomaly monitor's open alert on one series (a carrier into a
    /// region, a lane, a destination), if any: how severe it is now and
    /// when it opened. Written from the monitor's alert changes
    /// (`monitor::signal`), so a model reads an open disruption like any
    /// other record.
    Disruption,
}

/// Counters of shipment outcomes, for carriers, lanes, carrier-lanes, origins
/// and destinations.
pub mod shipment_counters {
    /// Finished shipments.
    pub const DONE: usize = 0;
    /// Failed shipments (cancelled, or late past the grace).
    pub const FAILED: usize = 1;
    /// Cancelled shipments (also counted as failed).
    pub const CANCELLED: usize = 2;
    /// Sum of minutes late over delivered shipments (each capped at two days).
    pub const DELAY_MINUTES: usize = 3;
}

/// Counters and gauges of a site.
pub mod site_fields {
    /// Orders created.
    pub const ORDERS: usize = 0;
    /// Orders finished (any outcome).
    pub const ORDERS_DONE: usize = 1;
    /// Orders that fell out.
    pub const FALLOUT: usize = 2;
    /// Orders that shipped late.
    pub const LATE: usize = 3;
    /// Snapshots seen.
    pub const SNAPSHOTS: usize = 4;
    /// Sum of backlog over snapshots (divide by SNAPSHOTS for the mean).
    pub const BACKLOG_SUM: usize = 5;

    /// Gauge: orders waiting at the latest snapshot.
    pub const BACKLOG: usize = 0;
    /// Gauge: people on shift.
    pub const LABOUR: usize = 1;
    /// Gauge: units picked per hour in the latest period.
    pub const PICKED_PER_HOUR: usize = 2;
    /// Gauge: share of dock doors in use.
    pub const DOCK_UTILISATION: usize = 3;
}

/// Counters of orders from one site to one region, and of the long records of
/// a site and of the network.
pub mod site_region_counters {
    /// Orders finished (any outcome).
    pub const DONE: usize = 0;
    /// Orders that fell out.
    pub const FALLOUT: usize = 1;
    /// Orders that shipped late.
    pub const LATE: usize = 2;
}

/// Counters of departure and arrival records: legs that moved (left, or
/// arrived), and how late.
pub mod movement_counters {
    /// Legs that left (departure records) or arrived (arrival records).
    pub const MOVED: usize = 0;
    /// Legs that moved more than the grace after their schedule.
    pub const LATE: usize = 1;
    /// Sum of minutes late (each capped at two days; early is 0).
    pub const DELAY_MINUTES: usize = 2;
}

/// Counters of a site's flow of orders: each step counted when it happened.
pub mod flow_counters {
    /// Orders allocated to the site.
    pub const ALLOCATED: usize = 0;
    /// Orders released to the floor.
    pub const RELEASED: usize = 1;
    /// Orders picked.
    pub const PICKED: usize = 2;
    /// Orders shipped from the site.
    pub const SHIPPED: usize = 3;
}

/// Counters of slots.
pub mod slot_counters {
    /// Legs announced for the slot.
    pub const PLANNED: usize = 0;
    /// Legs of the slot that have left or were cancelled (departure slots only).
    pub const GONE: usize = 1;
}

/// Gauge of an inventory position: units on hand.
pub const ON_HAND: usize = 0;

/// Gauges of a disruption record.
pub mod disruption_gauges {
    /// The open alert's severity, 1 (low) to 4 (critical); 0 once it
    /// resolved.
    pub const SEVERITY: usize = 0;
    /// When the open alert's episode began (Unix s); 0 once it resolved.
    pub const OPENED_AT: usize = 1;
}

impl AggregateKind {
    /// The key segment and name of this kind.
    pub fn name(self) -> &'static str {
        match self {
            AggregateKind::Carrier => "carrier",
            AggregateKind::Lane => "lane",
            // Renamed when its first window became all time (was a day), so
            // records an earlier build wrote are not misread.
            AggregateKind::CarrierLane => "carrier_lane_shipments",
            AggregateKind::Site => "site",
            AggregateKind::Inventory => "inventory",
            AggregateKind::Origin => "origin",
            AggregateKind::Destination => "destination",
            // Renamed when its windows became a year, all time and 28 days, so
            // records an earlier build wrote (1, 7, 28 days) are not misread.
            AggregateKind::SiteRegion => "site_region_orders",
            AggregateKind::Departures => "departures",
            AggregateKind::CarrierDepartures => "carrier_departures",
            AggregateKind::CarrierNetworkDepartures => "carrier_network_departures",
            AggregateKind::DeparturesTo => "departures_to",
            AggregateKind::Arrivals => "arrivals",
            AggregateKind::SiteHistory => "site_history",
            AggregateKind::OrderNetwork => "order_network",
            AggregateKind::DepartureSlot => "departure_slot",
            AggregateKind::CarrierExceptions => "carrier_exceptions",
            AggregateKind::ExceptionsTo => "exceptions_to",
            AggregateKind::SiteFlow => "site_flow",
            AggregateKind::Disruption => "disruption",
        }
    }

    /// Counter names, in index order.
    pub fn counters(self) -> &'static [&'static str] {
        match self {
            AggregateKind::Carrier
            | AggregateKind::Lane
            | AggregateKind::CarrierLane
            | AggregateKind::Origin
            | AggregateKind::Destination => &["done", "failed", "cancelled", "delay_min"],
            AggregateKind::Site => &[
                "orders",
                "orders_done",
                "fallout",
                "late",
                "snapshots",
                "backlog_sum",
            ],
            AggregateKind::SiteRegion
            | AggregateKind::SiteHistory
            | AggregateKind::OrderNetwork => &["orders_done", "fallout", "late"],
            AggregateKind::Departures
            | AggregateKind::CarrierDepartures
            | AggregateKind::CarrierNetworkDepartures
            | AggregateKind::DeparturesTo => &["departed", "late", "delay_min"],
            AggregateKind::Arrivals => &["arrived", "late", "delay_min"],
            // Flagged legs; those expected later than the grace; the minutes
            // expected late.
            AggregateKind::CarrierExceptions | AggregateKind::ExceptionsTo => {
                &["flagged", "late", "delay_min"]
            }
            AggregateKind::SiteFlow => &["allocated", "released", "picked", "shipped"],
            AggregateKind::DepartureSlot => &["planned", "gone"],
            AggregateKind::Inventory | AggregateKind::Disruption => &[],
        }
    }

    /// The time constants this kind's counters decay with.
    pub fn windows(self) -> &'static [Window; WINDOW_COUNT] {
        match self {
            AggregateKind::Departures
            | AggregateKind::CarrierDepartures
            | AggregateKind::CarrierNetworkDepartures
            | AggregateKind::DeparturesTo
            | AggregateKind::Arrivals
            | AggregateKind::CarrierExceptions
            | AggregateKind::ExceptionsTo
            | AggregateKind::SiteFlow => &DEPARTURE_WINDOWS,
            AggregateKind::SiteRegion
            | AggregateKind::SiteHistory
            | AggregateKind::OrderNetwork => &PAIR_WINDOWS,
            AggregateKind::CarrierLane => &CARRIER_LANE_WINDOWS,
            AggregateKind::DepartureSlot => &SLOT_WINDOWS,
            _ => &WINDOWS,
        }
    }

    /// How long a record of this kind is kept after its last write, when it
    /// is only of use for a while: a slot is written when its legs are
    /// announced (a week or so ahead) and read for hours after its time, so
    /// it lives ten days from its last write.
    pub fn ttl_secs(self) -> Option<u64> {
        match self {
            AggregateKind::DepartureSlot => Some(10 * 86_400),
            _ => None,
        }
    }

    /// How long after its own time a record of this kind is still read, when
    /// that is bounded (a slot: by the backlog, four hours back; a day here):
    /// a report that comes later does not write it.
    pub fn read_for_secs(self) -> Option<f64> {
        match self {
            AggregateKind::DepartureSlot => Some(86_400.0),
            _ => None,
        }
    }

    /// Position in [`AggregateKind::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Every kind, in the order of its wire index (the Lua script's table of
    /// windows).
    pub const ALL: [AggregateKind; 20] = [
        AggregateKind::Carrier,
        AggregateKind::Lane,
        AggregateKind::CarrierLane,
        AggregateKind::Site,
        AggregateKind::Inventory,
        AggregateKind::Origin,
        AggregateKind::Destination,
        AggregateKind::SiteRegion,
        AggregateKind::Departures,
        AggregateKind::CarrierDepartures,
        AggregateKind::CarrierNetworkDepartures,
        AggregateKind::DeparturesTo,
        AggregateKind::Arrivals,
        AggregateKind::SiteHistory,
        AggregateKind::OrderNetwork,
        AggregateKind::DepartureSlot,
        AggregateKind::CarrierExceptions,
        AggregateKind::ExceptionsTo,
        AggregateKind::SiteFlow,
        AggregateKind::Disruption,
    ];

    /// Gauge names, in index order.
    pub fn gauges(self) -> &'static [&'static str] {
        match self {
            AggregateKind::Site => &["backlog", "labour", "picked_per_hour", "dock_utilisation"],
            AggregateKind::Inventory => &["on_hand"],
            AggregateKind::Disruption => &["severity", "opened_at"],
            _ => &[],
        }
    }
}

/// Identifies one record: its kind and the codes it is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AggregateKey {
    /// What the record is about.
    pub kind: AggregateKind,
    /// Codes joined by ':' ("XPO:ATL:JFK" for a carrier-lane). Codes never hold ':'.
    pub id: String,
}

impl AggregateKey {
    /// The record of one carrier.
    pub fn carrier(carrier: &str) -> Self {
        Self::of(AggregateKind::Carrier, &[carrier])
    }
    /// The record of one lane.
    pub fn lane(origin: &str, destination: &str) -> Self {
        Self::of(AggregateKind::Lane, &[origin, destination])
    }
    /// The record of one carrier on one lane.
    pub fn carrier_lane(carrier: &str, origin: &str, destination: &str) -> Self {
        Self::of(AggregateKind::CarrierLane, &[carrier, origin, destination])
    }
    /// The record of one site.
    pub fn site(site: &str) -> Self {
        Self::of(AggregateKind::Site, &[site])
    }
    /// The record of one SKU's stock at one site.
    pub fn inventory(site: &str, sku: &str) -> Self {
        Self::of(AggregateKind::Inventory, &[site, sku])
    }
    /// The record of shipments leaving `location`.
    pub fn origin(location: &str) -> Self {
        Self::of(AggregateKind::Origin, &[location])
    }
    /// The record of shipments arriving at `location`.
    pub fn destination(location: &str) -> Self {
        Self::of(AggregateKind::Destination, &[location])
    }
    /// The record of orders from `site` to `region`.
    pub fn site_region(site: &str, region: &str) -> Self {
        Self::of(AggregateKind::SiteRegion, &[site, region])
    }
    /// The record of legs that left `location`.
    pub fn departures(location: &str) -> Self {
        Self::of(AggregateKind::Departures, &[location])
    }
    /// The record of `carrier`'s legs that left `location`.
    pub fn carrier_departures(carrier: &str, location: &str) -> Self {
        Self::of(AggregateKind::CarrierDepartures, &[carrier, location])
    }
    /// The record of `carrier`'s legs that left anywhere.
    pub fn carrier_network_departures(carrier: &str) -> Self {
        Self::of(AggregateKind::CarrierNetworkDepartures, &[carrier])
    }
    /// The long record of orders fulfilled from `site`.
    pub fn site_history(site: &str) -> Self {
        Self::of(AggregateKind::SiteHistory, &[site])
    }
    /// The long record of every order.
    pub fn order_network() -> Self {
        Self::of(AggregateKind::OrderNetwork, &["all"])
    }
    /// The record of legs bound for `location` that left.
    pub fn departures_to(location: &str) -> Self {
        Self::of(AggregateKind::DeparturesTo, &[location])
    }
    /// The record of legs that arrived at `location`.
    pub fn arrivals(location: &str) -> Self {
        Self::of(AggregateKind::Arrivals, &[location])
    }
    /// The record of `carrier`'s legs bound for `location` that it flagged.
    pub fn carrier_exceptions(carrier: &str, location: &str) -> Self {
        Self::of(AggregateKind::CarrierExceptions, &[carrier, location])
    }
    /// The record of legs bound for `location` flagged by their carriers.
    pub fn exceptions_to(location: &str) -> Self {
        Self::of(AggregateKind::ExceptionsTo, &[location])
    }
    /// The record of the steps `site` took its orders through.
    pub fn site_flow(site: &str) -> Self {
        Self::of(AggregateKind::SiteFlow, &[site])
    }
    /// The open alert, if any, on `carrier`'s legs into `region`.
    pub fn carrier_region_alert(carrier: &str, region: &str) -> Self {
        Self::of(
            AggregateKind::Disruption,
            &["carrier_region", carrier, region],
        )
    }
    /// The open alert, if any, on the lane `origin` → `destination`.
    pub fn lane_alert(origin: &str, destination: &str) -> Self {
        Self::of(AggregateKind::Disruption, &["lane", origin, destination])
    }
    /// The open alert, if any, on every leg into `destination`.
    pub fn inbound_alert(destination: &str) -> Self {
        Self::of(AggregateKind::Disruption, &["inbound", destination])
    }
    /// The slot of legs scheduled to leave `location` in slot number `slot`
    /// (see [`slot_of`]).
    pub fn departure_slot(location: &str, slot: i64) -> Self {
        AggregateKey {
            kind: AggregateKind::DepartureSlot,
            id: format!("{location}:{slot}"),
        }
    }

    fn of(kind: AggregateKind, parts: &[&str]) -> Self {
        AggregateKey {
            kind,
            id: parts.join(":"),
        }
    }
}

/// The slot a time falls in: [`SLOT_MINUTES`]-long periods counted from the
/// Unix epoch (floor, so times before it get negative slots).
pub fn slot_of(at_secs: f64) -> i64 {
    (at_secs / (SLOT_MINUTES as f64 * 60.0)).floor() as i64
}

/// Where in its slot a time falls, 0.0 at its start ..< 1.0.
pub fn slot_fraction(at_secs: f64) -> f64 {
    let slot = SLOT_MINUTES as f64 * 60.0;
    at_secs.rem_euclid(slot) / slot
}

impl fmt::Display for AggregateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind.name(), self.id)
    }
}
