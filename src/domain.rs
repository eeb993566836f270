//! Plain domain types shared by every layer: times, orders, shipments, site
//! snapshots, inventory, events and risk kinds, with the rules their values keep
//! ([`validate`]) and the checked constructors that apply them ([`fields`]).
//! No IO, no protobuf.

pub mod fields;
pub mod validate;

use std::fmt;

pub use fields::{InventoryFields, OrderFields, ShipmentFields, SiteSnapshotFields};
pub use validate::{FieldError, TIME_WINDOW, TimeInput};

/// A point in time, in milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Parses an RFC 3339 time with any UTC offset ("2026-11-27T08:00:00+01:00").
    pub fn parse_rfc3339(text: &str) -> Result<Self, chrono::ParseError> {
        let parsed = chrono::DateTime::parse_from_rfc3339(text.trim())?;
        Ok(Self(parsed.timestamp_millis()))
    }

    /// The current wall-clock time.
    pub fn now() -> Self {
        Self(chrono::Utc::now().timestamp_millis())
    }

    /// Seconds since the epoch, as used by the feature aggregates.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// Signed hours from `earlier` to `self`.
    pub fn hours_since(self, earlier: Timestamp) -> f64 {
        (self.0 as f64 - earlier.0 as f64) / 3_600_000.0
    }

    /// This time shifted by a number of minutes (may be negative).
    pub fn plus_minutes(self, minutes: f64) -> Self {
        // `as` saturates a huge or NaN float; the sum saturates too.
        Self(self.0.saturating_add((minutes * 60_000.0).round() as i64))
    }

    /// Hour of the day in UTC, with minutes as a fraction (0.0 ..< 24.0).
    pub fn hour_of_day_utc(self) -> f64 {
        self.0.rem_euclid(86_400_000) as f64 / 3_600_000.0
    }

    /// Day of the week in UTC, Monday = 0 .. Sunday = 6.
    pub fn weekday_utc(self) -> u32 {
        // 1970-01-01 was a Thursday (3 when Monday is 0).
        ((self.0.div_euclid(86_400_000) + 3).rem_euclid(7)) as u32
    }

    /// RFC 3339 in UTC with second precision.
    pub fn to_rfc3339(self) -> String {
        chrono::DateTime::from_timestamp_millis(self.0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default()
    }
}

impl serde::Serialize for Timestamp {
    /// As RFC 3339 text in UTC, the form every file and message uses, with
    /// milliseconds when there are any (so nothing is lost).
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = chrono::DateTime::from_timestamp_millis(self.0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            .unwrap_or_default();
        serializer.serialize_str(&text)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Timestamp::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// Where a shipment leg stands. A leg's life is planned → in transit (once it
/// has left) → delivered, or cancelled at any point; each report of it is an
/// event of its own, and a report of an earlier stage never replaces a later
/// one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShipmentStatus {
    /// Moving (its `actual_departure` says when it left), or, without an
    /// actual departure, planned; no outcome yet.
    InTransit,
    /// Arrived; the actual arrival is known.
    Delivered,
    /// Will not move; counts as a failure of the leg.
    Cancelled,
    /// Announced with its schedule and not yet left: no actual times.
    Planned,
}

impl ShipmentStatus {
    /// The stage's place in a leg's life: a stored state is never replaced by
    /// one of an earlier stage.
    pub fn stage(self) -> u8 {
        match self {
            ShipmentStatus::Planned => 0,
            ShipmentStatus::InTransit => 1,
            ShipmentStatus::Delivered | ShipmentStatus::Cancelled => 2,
        }
    }
}

/// One shipment leg.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Shipment {
    /// The caller's id for the leg; events about the same leg share it.
    pub shipment_id: String,
    /// Carrier code as in `network.toml` (e.g. "XPO").
    pub carrier: String,
    /// Location code the leg leaves from, usually a site.
    pub origin: String,
    /// Location code the leg goes to.
    pub destination: String,
    /// When the leg is planned to leave.
    pub scheduled_departure: Timestamp,
    /// When the leg is planned to arrive; not before the departure.
    pub scheduled_arrival: Timestamp,
    /// When it left; `None` until known.
    pub actual_departure: Option<Timestamp>,
    /// When it arrived; `None` until known, always set once delivered.
    pub actual_arrival: Option<Timestamp>,
    /// Where the leg stands.
    pub status: ShipmentStatus,
    /// What its carrier last reported while it was under way.
    #[serde(default, skip_serializing_if = "Tracking::is_empty")]
    pub tracking: Tracking,
}

/// A carrier's tracking report on a leg: an exception, a new estimated
/// arrival, or both, and when it was made.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Tracking {
    /// The carrier's reason code for an exception ("WEATHER",
    /// "MISSED_PICKUP"); `None` when it reported none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<String>,
    /// When the carrier now expects the leg to arrive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_arrival: Option<Timestamp>,
    /// When the report was made: orders reports of one stage (a later one
    /// wins), and dates the exception. `None`: when it was received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_at: Option<Timestamp>,
}

impl Tracking {
    /// Whether the carrier reported nothing (so a stored leg need not say so).
    pub fn is_empty(&self) -> bool {
        *self == Tracking::default()
    }

    /// Whether the carrier flagged the leg: an exception, or an estimated
    /// arrival more than `grace_minutes` after the scheduled one.
    pub fn flagged(&self, scheduled_arrival: Timestamp, grace_minutes: f64) -> bool {
        self.exception.is_some()
            || self
                .estimated_arrival
                .is_some_and(|eta| eta.hours_since(scheduled_arrival) * 60.0 > grace_minutes)
    }
}

/// Whether a finished shipment failed, and by how much it was late.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShipmentOutcome {
    /// When the outcome became known.
    pub known_at: Timestamp,
    /// Cancelled, or delivered later than the grace allows.
    pub failed: bool,
    /// The leg was cancelled (and so also failed).
    pub cancelled: bool,
    /// Minutes past the scheduled arrival (0 when early or cancelled).
    pub delay_minutes: f64,
}

impl Shipment {
    /// The outcome of a finished shipment, `None` while in transit. A delivery later
    /// than the scheduled arrival by more than `grace_minutes` is a failure, as is a
    /// cancellation. A cancellation is taken as known at the scheduled departure.
    pub fn outcome(&self, grace_minutes: f64) -> Option<ShipmentOutcome> {
        match self.status {
            ShipmentStatus::Planned | ShipmentStatus::InTransit => None,
            ShipmentStatus::Cancelled => Some(ShipmentOutcome {
                known_at: self.scheduled_departure,
                failed: true,
                cancelled: true,
                delay_minutes: 0.0,
            }),
            ShipmentStatus::Delivered => {
                let arrived = self.actual_arrival?;
                let late_minutes = (arrived.0 - self.scheduled_arrival.0) as f64 / 60_000.0;
                Some(ShipmentOutcome {
                    known_at: arrived,
                    failed: late_minutes > grace_minutes,
                    cancelled: false,
                    delay_minutes: late_minutes.max(0.0),
                })
            }
        }
    }
}

/// How urgently an order was promised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderPriority {
    /// The ordinary promise.
    Standard,
    /// A shorter promise than standard.
    Express,
}

/// How an order ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderOutcome {
    /// Delivered by the promise; the one outcome that is not fallout.
    ShippedOnTime,
    /// Shipped, but delivered after the promise.
    Late,
    /// Cancelled before it shipped.
    Cancelled,
    /// Not shipped for want of stock.
    Backordered,
}

impl OrderOutcome {
    /// Fallout is any outcome but on time.
    pub fn is_fallout(self) -> bool {
        self != OrderOutcome::ShippedOnTime
    }
}

/// A customer order assigned to a site.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Order {
    /// The caller's id for the order; events about the same order share it.
    pub order_id: String,
    /// When the customer placed it.
    pub created_at: Timestamp,
    /// Free-form sales channel ("web", "store", "marketplace"), kept as given;
    /// at most 64 characters.
    pub channel: String,
    /// Code of the site the order is assigned to.
    pub site: String,
    /// Location code of where it goes.
    pub destination_region: String,
    /// When it was promised to arrive; not before `created_at`.
    pub promise_at: Timestamp,
    /// Number of order lines, 1 to 100,000.
    pub line_count: u32,
    /// Units ordered across all lines, within [0, 1e9].
    pub units: f64,
    /// How urgently it was promised.
    pub priority: OrderPriority,
    /// `None` while the order is open.
    pub outcome: Option<OrderOutcome>,
    /// How far its site has taken it.
    #[serde(default, skip_serializing_if = "OrderProgress::is_empty")]
    pub progress: OrderProgress,
}

/// When a site took an order through each step of its work; `None` until
/// done. Each step is reported as it happens, each report an event.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OrderProgress {
    /// Allocated to the site (its stock reserved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated_at: Option<Timestamp>,
    /// Released to the warehouse floor for picking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_at: Option<Timestamp>,
    /// Picked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picked_at: Option<Timestamp>,
    /// Shipped from the site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipped_at: Option<Timestamp>,
}

impl OrderProgress {
    /// Whether no step is done (so a stored order need not say so).
    pub fn is_empty(&self) -> bool {
        *self == OrderProgress::default()
    }

    /// The steps in order, each with its name and time.
    pub fn steps(&self) -> [(&'static str, Option<Timestamp>); 4] {
        [
            ("allocated_at", self.allocated_at),
            ("released_at", self.released_at),
            ("picked_at", self.picked_at),
            ("shipped_at", self.shipped_at),
        ]
    }

    /// How many steps are done: an order's stage among open orders.
    pub fn done(&self) -> u8 {
        self.steps().iter().filter(|(_, at)| at.is_some()).count() as u8
    }
}

/// A periodic snapshot of a site's queue and resources.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteSnapshot {
    /// Code of the site.
    pub site: String,
    /// When the snapshot was taken (the end of its period).
    pub at: Timestamp,
    /// Orders waiting.
    pub backlog: f64,
    /// People on shift.
    pub labour: f64,
    /// Units picked in the period ending at `at`.
    pub units_picked: f64,
    /// Length of that period in minutes.
    pub period_minutes: f64,
    /// Share of dock doors in use, 0..=1.
    pub dock_utilisation: f64,
}

/// Stock of one SKU at one site.
#[derive(Debug, Clone, PartialEq)]
pub struct InventoryPosition {
    /// Code of the site holding the stock.
    pub site: String,
    /// Code of the stock-keeping unit.
    pub sku: String,
    /// Units on hand at `at`, within [0, 1e9].
    pub on_hand: f64,
    /// When the count was taken.
    pub at: Timestamp,
}

/// What an event carries.
#[derive(Debug, Clone, PartialEq)]
pub enum EventPayload {
    /// The latest state of a shipment leg.
    Shipment(Shipment),
    /// The latest state of an order.
    Order(Order),
    /// A site's queue and resources at one time.
    Site(SiteSnapshot),
    /// A stock count of one SKU at one site.
    Inventory(InventoryPosition),
}

/// A validated event, ready to be applied to the feature store.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The sender's id; an event whose id was seen within the dedupe TTL is a
    /// duplicate.
    pub event_id: String,
    /// The entity the event reports.
    pub payload: EventPayload,
}

/// A coarse reading of a probability, from the model's documented thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RiskBand {
    /// Below the model's medium threshold.
    Low,
    /// At or above the medium threshold, below the high one.
    Medium,
    /// At or above the high threshold.
    High,
    /// The inputs the family leans on most were missing or stale: the
    /// probability is a best guess at the training priors, not evidence.
    Unknown,
}

#[cfg(test)]
mod tests;
