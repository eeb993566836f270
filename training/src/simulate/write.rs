//! Every file the simulator writes, in one place: `network.toml`, the exports
//! (`orders.csv`, `shipments.csv`, `site_metrics.csv`) and the truth files
//! (`truth_shipments.csv`, `truth_reroutes.csv`, `truth_reallocations.csv`,
//! `truth_anomalies.csv`),
//! with their headers, ids and number formats.

use std::fs::File;
use std::path::Path;

use anyhow::Context;
use detour::domain::Timestamp;

use super::orders::{Pending, SimShipment};
use crate::csvio::{OrderRow, ShipmentRow, SiteMetricRow};
use crate::network_gen::SimNetwork;

/// One site's snapshot at the end of an hour.
pub(super) struct Snapshot {
    pub(super) site: usize,
    /// The end of the hour.
    pub(super) at: Timestamp,
    /// Orders still queued.
    pub(super) backlog: usize,
    pub(super) labour: f64,
    pub(super) units_picked: f64,
    pub(super) dock_utilisation: f64,
}

/// The open CSV files of one simulation.
pub(super) struct Writers {
    orders: csv::Writer<File>,
    shipments: csv::Writer<File>,
    metrics: csv::Writer<File>,
    truth: csv::Writer<File>,
    reroutes: csv::Writer<File>,
    reallocations: csv::Writer<File>,
    anomalies: csv::Writer<File>,
}

/// A row of `truth_anomalies.csv`: one disruption's window and what it
/// touches (codes that do not apply are empty).
pub(crate) struct TruthWindow<'a> {
    pub(crate) kind: &'a str,
    pub(crate) site: &'a str,
    pub(crate) carrier: &'a str,
    pub(crate) region: &'a str,
    pub(crate) area: &'a str,
    /// Site and region codes in `area`, space-separated.
    pub(crate) locations: String,
    pub(crate) start: Timestamp,
    pub(crate) end: Timestamp,
    pub(crate) factor: f64,
}

impl Writers {
    /// Creates `out`, writes `network.toml` there and opens the CSV files (the
    /// truth files with their headers; the exports take theirs from the rows).
    pub(super) fn create(out: &Path, sim: &SimNetwork) -> anyhow::Result<Writers> {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        std::fs::write(out.join("network.toml"), sim.network.to_toml())?;
        let open = |name: &str| csv::Writer::from_path(out.join(name));
        let mut writers = Writers {
            orders: open("orders.csv")?,
            shipments: open("shipments.csv")?,
            metrics: open("site_metrics.csv")?,
            truth: open("truth_shipments.csv")?,
            reroutes: open("truth_reroutes.csv")?,
            reallocations: open("truth_reallocations.csv")?,
            anomalies: open("truth_anomalies.csv")?,
        };
        writers.anomalies.write_record([
            "kind",
            "site",
            "carrier",
            "region",
            "area",
            "locations",
            "start",
            "end",
            "factor",
        ])?;
        writers.truth.write_record(["shipment_id", "p_fail"])?;
        writers.reroutes.write_record([
            "shipment_id",
            "carrier",
            "rate",
            "transit_hours",
            "p_fail",
        ])?;
        writers
            .reallocations
            .write_record(["order_id", "site", "cost", "p_fallout"])?;
        Ok(writers)
    }

    /// A row of `orders.csv`: `order` at `site`, with its outcome (none while
    /// open).
    pub(super) fn order(
        &mut self,
        sim: &SimNetwork,
        site: usize,
        order: &Pending,
        outcome: Option<&str>,
    ) -> anyhow::Result<()> {
        self.orders.serialize(OrderRow {
            order_id: order_id(order.id),
            created_at: order.created.to_rfc3339(),
            channel: order.channel.into(),
            site: sim.network.sites[site].code.clone(),
            destination_region: sim.network.regions[order.region].code.clone(),
            promise_at: order.shape().promise().to_rfc3339(),
            line_count: order.lines.to_string(),
            units: order.units.to_string(),
            priority: if order.express { "express" } else { "standard" }.into(),
            outcome: outcome.unwrap_or("").into(),
            ..OrderRow::default()
        })?;
        Ok(())
    }

    /// The shipment of `order` from `site`: its row of `shipments.csv`, its true
    /// failure probability in `truth_shipments.csv` and, if `sampled`, every
    /// carrier's in `truth_reroutes.csv`.
    pub(super) fn shipment(
        &mut self,
        sim: &SimNetwork,
        site: usize,
        order: &Pending,
        shipment: &SimShipment,
        sampled: bool,
    ) -> anyhow::Result<()> {
        let id = format!("S{:08}", order.id);
        self.truth
            .write_record([id.as_str(), &format!("{:.6}", shipment.p_fail)])?;
        if sampled {
            for (carrier, rate, transit, p_fail) in &shipment.alternatives {
                self.reroutes.write_record([
                    id.clone(),
                    sim.network.carriers[*carrier].code.clone(),
                    format!("{rate:.2}"),
                    format!("{transit}"),
                    format!("{p_fail:.6}"),
                ])?;
            }
        }
        let time = |t: Option<Timestamp>| t.map_or(String::new(), |t| t.to_rfc3339());
        self.shipments.serialize(ShipmentRow {
            shipment_id: id,
            carrier: sim.network.carriers[shipment.carrier].code.clone(),
            origin: sim.network.sites[site].code.clone(),
            destination: sim.network.regions[order.region].code.clone(),
            scheduled_departure: shipment.departure.to_rfc3339(),
            scheduled_arrival: shipment.arrival.to_rfc3339(),
            actual_departure: time(shipment.actual_departure),
            actual_arrival: time(shipment.actual_arrival),
            status: shipment.status.into(),
            ..ShipmentRow::default()
        })?;
        Ok(())
    }

    /// A row of `truth_reallocations.csv`: what fulfilling order `order` from
    /// `site` would risk and cost.
    pub(super) fn reallocation_option(
        &mut self,
        order: u64,
        site: &str,
        cost: f64,
        p_fallout: f64,
    ) -> anyhow::Result<()> {
        self.reallocations.write_record([
            order_id(order),
            site.to_string(),
            format!("{cost:.2}"),
            format!("{p_fallout:.6}"),
        ])?;
        Ok(())
    }

    /// A row of `truth_anomalies.csv`.
    pub(super) fn anomaly_window(&mut self, w: &TruthWindow<'_>) -> anyhow::Result<()> {
        self.anomalies.write_record([
            w.kind,
            w.site,
            w.carrier,
            w.region,
            w.area,
            &w.locations,
            &w.start.to_rfc3339(),
            &w.end.to_rfc3339(),
            &format!("{:.3}", w.factor),
        ])?;
        Ok(())
    }

    /// A row of `site_metrics.csv`.
    pub(super) fn snapshot(&mut self, sim: &SimNetwork, s: &Snapshot) -> anyhow::Result<()> {
        self.metrics.serialize(SiteMetricRow {
            site: sim.network.sites[s.site].code.clone(),
            time: s.at.to_rfc3339(),
            backlog: s.backlog.to_string(),
            labour: s.labour.to_string(),
            units_picked: s.units_picked.to_string(),
            dock_utilisation: format!("{:.3}", s.dock_utilisation),
        })?;
        Ok(())
    }

    /// Flushes every file.
    pub(super) fn finish(mut self) -> anyhow::Result<()> {
        for writer in [
            &mut self.orders,
            &mut self.shipments,
            &mut self.metrics,
            &mut self.truth,
            &mut self.reroutes,
            &mut self.reallocations,
            &mut self.anomalies,
        ] {
            writer.flush()?;
        }
        Ok(())
    }
}

/// An order's id in the exports.
fn order_id(id: u64) -> String {
    format!("O{id:08}")
}
