//! Feature schemas: what each model family takes as input (names, units, and
//! how a recommendation may use each feature), the fixed-size vector those
//! inputs travel in, and the table of families.
//!
//! Boundary: a leaf. It knows only [`crate::schema::RiskKind`]; `features`
//! computes these vectors, `models` checks artifacts against these schemas and
//! `registry` holds one model per row of [`FAMILIES`].

/// Most features any family has.
pub const MAX_FEATURES: usize = 40;

/// The risk families Detour scores; what each is lies in its row of
/// [`FAMILIES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RiskKind {
    /// An order ends late, cancelled or backordered.
    OrderFallout,
    /// A site's backlog goes above its limit in `network.toml` within the horizon.
    SiteCongestion,
    /// A shipment leg is cancelled or delivered late past the grace.
    CarrierFailure,
}

impl RiskKind {
    /// Every family, in the order of [`FAMILIES`].
    pub const ALL: [RiskKind; 3] = [
        RiskKind::OrderFallout,
        RiskKind::SiteCongestion,
        RiskKind::CarrierFailure,
    ];

    /// Position in [`RiskKind::ALL`] and of the family's row in [`FAMILIES`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The family's name, as used in artifacts, directories and the wire enum
    /// (`RISK_KIND_` + the name in capitals).
    pub fn name(self) -> &'static str {
        family(self).name
    }
}

/// A model family: the risk it scores and the inputs its models take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    /// Which family.
    pub kind: RiskKind,
    /// Its name in artifacts and directories ("carrier_failure").
    pub name: &'static str,
    /// Inputs, in the order every artifact of the family expects them.
    pub schema: &'static [FeatureDef],
}

/// Every family this build serves, in [`RiskKind::ALL`] order. Adding a family
/// is a variant of [`RiskKind`], a row here and its schema (ARCHITECTURE.md,
/// "Where new things go").
pub const FAMILIES: [Family; RiskKind::ALL.len()] = [
    Family {
        kind: RiskKind::OrderFallout,
        name: "order_fallout",
        schema: ORDER_FALLOUT_FEATURES,
    },
    Family {
        kind: RiskKind::SiteCongestion,
        name: "site_congestion",
        schema: SITE_CONGESTION_FEATURES,
    },
    Family {
        kind: RiskKind::CarrierFailure,
        name: "carrier_failure",
        schema: CARRIER_FAILURE_FEATURES,
    },
];

/// The row of a family.
pub fn family(kind: RiskKind) -> &'static Family {
    &FAMILIES[kind.index()]
}

/// The feature schema this build computes for a family.
pub fn schema_of(kind: RiskKind) -> &'static [FeatureDef] {
    family(kind).schema
}

/// One model input: its name and unit, as shown in explanations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureDef {
    /// Snake-case name, as artifacts and explanations spell it.
    pub name: &'static str,
    /// Unit of its value ("hours", "share", "0/1").
    pub unit: &'static str,
    /// Whether it describes the carrier a reroute would change, rather than the
    /// situation every carrier shares; the carrier model compares carriers by
    /// these through linear terms only (`models::LinearTrees`). Only the
    /// carrier family marks any: the order model's boosted trees rank sites
    /// better than the nearest-site policy as they are.
    pub of_option: bool,
    /// Whether a higher value may never lower the predicted risk (a failure
    /// record of the option): its linear coefficient is kept at or above 0, so
    /// a carrier never looks safer for failing more.
    pub never_lowers_risk: bool,
}

const fn def(name: &'static str, unit: &'static str) -> FeatureDef {
    FeatureDef {
        name,
        unit,
        of_option: false,
        never_lowers_risk: false,
    }
}

/// A feature of the option a recommendation chooses (see [`FeatureDef::of_option`]).
const fn option_def(name: &'static str, unit: &'static str) -> FeatureDef {
    FeatureDef {
        name,
        unit,
        of_option: true,
        never_lowers_risk: false,
    }
}

/// A failure record of the option (see [`FeatureDef::never_lowers_risk`]).
const fn record_def(name: &'static str, unit: &'static str) -> FeatureDef {
    FeatureDef {
        name,
        unit,
        of_option: true,
        never_lowers_risk: true,
    }
}

/// Inputs of the carrier-failure family, in order.
pub const CARRIER_FAILURE_FEATURES: &[FeatureDef] = &[
    record_def("carrier_failure_rate_7d", "share"),
    record_def("carrier_failure_rate_28d", "share"),
    record_def("carrier_cancel_rate_28d", "share"),
    def("lane_failure_rate_7d", "share"),
    def("origin_failure_rate_1d", "share"),
    def("destination_failure_rate_1d", "share"),
    record_def("carrier_lane_failure_rate_7d", "share"),
    record_def("carrier_lane_failure_rate_28d", "share"),
    record_def("carrier_lane_vs_lane_28d", "share"),
    record_def("carrier_lane_mean_delay_28d", "minutes"),
    option_def("carrier_volume_1d_log", "ln(1+shipments)"),
    option_def("carrier_lane_volume_28d_log", "ln(1+shipments)"),
    def("origin_dock_utilisation", "share"),
    def("origin_backlog_to_limit", "ratio"),
    option_def("scheduled_transit_hours", "hours"),
    def("departure_hour_sin", "sin(hour)"),
    def("departure_hour_cos", "cos(hour)"),
    def("departure_weekend", "0/1"),
    def("lead_time_hours", "hours"),
    def("origin_backlog_log", "ln(1+legs)"),
    def("origin_backlog_share", "share"),
    def("origin_late_departure_share_1h", "share"),
    def("origin_mean_departure_delay_1h", "minutes"),
    def("origin_late_departure_share_1d", "share"),
    def("origin_departures_1h_log", "ln(1+legs)"),
    record_def("carrier_origin_late_departure_share_3h", "share"),
    record_def("carrier_origin_mean_departure_delay_3h", "minutes"),
    def("origin_slot_scheduled_log", "ln(1+legs)"),
    def("departure_weekday", "0-6, Monday 0"),
    record_def("carrier_late_departure_share_3h", "share"),
    def("destination_bound_late_departure_share_3h", "share"),
    def("destination_late_arrival_share_3h", "share"),
    def("destination_mean_arrival_delay_3h", "minutes"),
    record_def("carrier_lane_failure_rate_all_light", "share"),
    record_def("carrier_lane_failure_rate_all", "share"),
    option_def("carrier_lane_volume_all_log", "ln(1+shipments)"),
    record_def(
        "carrier_region_alert_severity",
        "0 none, 1 low … 4 critical",
    ),
    def("lane_alert_severity", "0 none, 1 low … 4 critical"),
    def("destination_alert_severity", "0 none, 1 low … 4 critical"),
];

/// Inputs of the order-fallout family, in order.
pub const ORDER_FALLOUT_FEATURES: &[FeatureDef] = &[
    def("site_backlog_to_limit", "ratio"),
    def("site_backlog_per_labour", "orders/person"),
    def("site_dock_utilisation", "share"),
    def("site_backlog_vs_7d_mean", "ratio"),
    def("site_fallout_rate_1d", "share"),
    def("site_fallout_rate_7d", "share"),
    def("site_late_rate_7d", "share"),
    def("site_inflow_1d_log", "ln(1+orders)"),
    def("site_inflow_trend", "ratio"),
    def("lane_failure_rate_1d", "share"),
    def("lane_failure_rate_7d", "share"),
    def("site_region_fallout_rate_28d", "share"),
    def("site_region_volume_28d_log", "ln(1+orders)"),
    def("promise_slack_hours", "hours"),
    def("promise_slack_after_transit_hours", "hours"),
    def("line_count", "lines"),
    def("units_log", "ln(1+units)"),
    def("priority_express", "0/1"),
    def("created_hour_sin", "sin(hour)"),
    def("created_hour_cos", "cos(hour)"),
    def("created_weekend", "0/1"),
    def("site_region_fallout_rate_all", "share"),
    def("site_region_fallout_rate_all_shrunk", "share"),
    def("site_region_late_rate_all_shrunk", "share"),
    def("site_region_fallout_rate_1y_shrunk", "share"),
    def("site_region_volume_all_log", "ln(1+orders)"),
    def("site_fallout_rate_all", "share"),
    def("network_fallout_rate_all", "share"),
];

/// Inputs of the site-congestion family, in order.
pub const SITE_CONGESTION_FEATURES: &[FeatureDef] = &[
    def("backlog_to_limit", "ratio"),
    def("backlog_per_labour", "orders/person"),
    def("labour", "people"),
    def("picked_per_hour", "units/hour"),
    def("dock_utilisation", "share"),
    def("backlog_vs_7d_mean", "ratio"),
    def("inflow_1d_log", "ln(1+orders)"),
    def("inflow_trend", "ratio"),
    def("fallout_rate_1d", "share"),
    def("hour_sin", "sin(hour)"),
    def("hour_cos", "cos(hour)"),
    def("weekend", "0/1"),
    def("snapshot_age_hours", "hours"),
];

/// Values of one entity's features, in schema order; NaN where unknown.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeatureVector {
    /// The values; those past `len` are NaN and belong to no feature.
    pub values: [f64; MAX_FEATURES],
    /// How many features the family's schema has.
    pub len: usize,
}

impl FeatureVector {
    /// A vector holding `values` (at most [`MAX_FEATURES`]).
    pub fn from_slice(values: &[f64]) -> Self {
        let mut out = [f64::NAN; MAX_FEATURES];
        out[..values.len()].copy_from_slice(values);
        FeatureVector {
            values: out,
            len: values.len(),
        }
    }

    /// The values as a slice.
    pub fn as_slice(&self) -> &[f64] {
        &self.values[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_every_family_once_in_index_order() {
        for (index, kind) in RiskKind::ALL.into_iter().enumerate() {
            assert_eq!(kind.index(), index);
            assert_eq!(FAMILIES[index].kind, kind);
            assert!(
                RiskKind::ALL[..index]
                    .iter()
                    .all(|k| k.name() != kind.name())
            );
        }
    }

    #[test]
    fn schemas_fit_a_vector_and_name_each_feature_once() {
        for family in FAMILIES {
            assert!(
                family.schema.len() <= MAX_FEATURES,
                "{}",
                family.kind.name()
            );
            let mut names: Vec<&str> = family.schema.iter().map(|f| f.name).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), family.schema.len(), "{}", family.kind.name());
            // A failure record that may never lower risk is always a feature of the option.
            assert!(
                family
                    .schema
                    .iter()
                    .all(|f| !f.never_lowers_risk || f.of_option)
            );
        }
    }
}
