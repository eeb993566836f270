//! The CSV exports (README, "Your own history"): row shapes, and readers that build each row into
//! a domain entity through the same checked constructors as the gRPC API
//! (`detour::domain::fields`), so one set of rules holds for both. A bad row is
//! counted and reported with its line number, never silently dropped and never a
//! crash; duplicate ids keep their first row.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use anyhow::Context;
use detour::domain::{
    FieldError, Order, OrderFields, OrderOutcome, OrderPriority, Shipment, ShipmentFields,
    ShipmentStatus, SiteSnapshot, SiteSnapshotFields, TimeInput,
};
use serde::{Deserialize, Serialize};

/// How many example lines each kind of problem keeps.
const EXAMPLES: usize = 5;

/// One row of `shipments.csv`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ShipmentRow {
    pub shipment_id: String,
    pub carrier: String,
    pub origin: String,
    pub destination: String,
    pub scheduled_departure: String,
    pub scheduled_arrival: String,
    #[serde(default)]
    pub actual_departure: String,
    #[serde(default)]
    pub actual_arrival: String,
    pub status: String,
    /// The carrier's last tracking report, when the export has one.
    #[serde(default)]
    pub exception: String,
    #[serde(default)]
    pub estimated_arrival: String,
    #[serde(default)]
    pub reported_at: String,
}

/// One row of `orders.csv`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OrderRow {
    pub order_id: String,
    pub created_at: String,
    #[serde(default)]
    pub channel: String,
    pub site: String,
    pub destination_region: String,
    pub promise_at: String,
    pub line_count: String,
    pub units: String,
    #[serde(default)]
    pub priority: String,
    #[serde(default)]
    pub outcome: String,
    /// The site's steps, when the export has them.
    #[serde(default)]
    pub allocated_at: String,
    #[serde(default)]
    pub released_at: String,
    #[serde(default)]
    pub picked_at: String,
    #[serde(default)]
    pub shipped_at: String,
}

/// One row of `site_metrics.csv`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SiteMetricRow {
    pub site: String,
    pub time: String,
    pub backlog: String,
    pub labour: String,
    pub units_picked: String,
    pub dock_utilisation: String,
}

/// What reading one file found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FileReport {
    pub file: String,
    pub rows: usize,
    pub accepted: usize,
    /// Problem (e.g. "scheduled_departure: not an RFC 3339 time") → count and first lines.
    pub problems: BTreeMap<String, Problem>,
}

/// One kind of problem: how often, and where first.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Problem {
    pub count: usize,
    pub first_lines: Vec<u64>,
}

impl FileReport {
    fn new(file: &Path) -> Self {
        FileReport {
            file: file.display().to_string(),
            ..FileReport::default()
        }
    }

    fn problem(&mut self, kind: String, line: u64) {
        let entry = self.problems.entry(kind).or_default();
        entry.count += 1;
        if entry.first_lines.len() < EXAMPLES {
            entry.first_lines.push(line);
        }
    }

    /// Rows not accepted.
    pub fn rejected(&self) -> usize {
        self.rows - self.accepted
    }
}

/// Reads `shipments.csv`.
pub fn read_shipments(path: &Path) -> anyhow::Result<(Vec<Shipment>, FileReport)> {
    read_rows(path, |row: ShipmentRow| {
        let status = match row.status.trim().to_ascii_lowercase().as_str() {
            "delivered" => ShipmentStatus::Delivered,
            "cancelled" | "canceled" => ShipmentStatus::Cancelled,
            "in_transit" | "" => ShipmentStatus::InTransit,
            "planned" => ShipmentStatus::Planned,
            other => {
                return Err(FieldError::new(
                    "status",
                    format!("unknown status {other:?}"),
                ));
            }
        };
        let shipment = Shipment::new(ShipmentFields {
            shipment_id: &row.shipment_id,
            carrier: &row.carrier,
            origin: &row.origin,
            destination: &row.destination,
            scheduled_departure: TimeInput::rfc3339(&row.scheduled_departure),
            scheduled_arrival: TimeInput::rfc3339(&row.scheduled_arrival),
            actual_departure: TimeInput::rfc3339(&row.actual_departure),
            actual_arrival: TimeInput::rfc3339(&row.actual_arrival),
            status,
            exception: &row.exception,
            estimated_arrival: TimeInput::rfc3339(&row.estimated_arrival),
            reported_at: TimeInput::rfc3339(&row.reported_at),
        })?;
        Ok((shipment.shipment_id.clone(), shipment))
    })
}

/// Reads `orders.csv`.
pub fn read_orders(path: &Path) -> anyhow::Result<(Vec<Order>, FileReport)> {
    read_rows(path, |row: OrderRow| {
        let priority = match row.priority.trim().to_ascii_lowercase().as_str() {
            "" | "standard" => OrderPriority::Standard,
            "express" => OrderPriority::Express,
            other => {
                return Err(FieldError::new(
                    "priority",
                    format!("unknown priority {other:?}"),
                ));
            }
        };
        let outcome = match row.outcome.trim().to_ascii_lowercase().as_str() {
            "" => None,
            "shipped_on_time" => Some(OrderOutcome::ShippedOnTime),
            "late" => Some(OrderOutcome::Late),
            "cancelled" | "canceled" => Some(OrderOutcome::Cancelled),
            "backordered" => Some(OrderOutcome::Backordered),
            other => {
                return Err(FieldError::new(
                    "outcome",
                    format!("unknown outcome {other:?}"),
                ));
            }
        };
        let order = Order::new(OrderFields {
            order_id: &row.order_id,
            created_at: TimeInput::rfc3339(&row.created_at),
            channel: &row.channel,
            site: &row.site,
            destination_region: &row.destination_region,
            promise_at: TimeInput::rfc3339(&row.promise_at),
            // Saturating, as before: "2.5" is 2 lines, "-1" is 0 (refused).
            line_count: number(&row.line_count, "line_count")? as u32,
            units: number(&row.units, "units")?,
            priority,
            outcome,
            allocated_at: TimeInput::rfc3339(&row.allocated_at),
            released_at: TimeInput::rfc3339(&row.released_at),
            picked_at: TimeInput::rfc3339(&row.picked_at),
            shipped_at: TimeInput::rfc3339(&row.shipped_at),
        })?;
        Ok((order.order_id.clone(), order))
    })
}

/// Reads `site_metrics.csv` (hourly snapshots).
pub fn read_site_metrics(path: &Path) -> anyhow::Result<(Vec<SiteSnapshot>, FileReport)> {
    read_rows(path, |row: SiteMetricRow| {
        let snapshot = SiteSnapshot::new(SiteSnapshotFields {
            site: &row.site,
            at: TimeInput::rfc3339(&row.time),
            backlog: number(&row.backlog, "backlog")?,
            labour: number(&row.labour, "labour")?,
            units_picked: number(&row.units_picked, "units_picked")?,
            // The export is hourly by definition.
            period_minutes: Some(60.0),
            dock_utilisation: number(&row.dock_utilisation, "dock_utilisation")?,
        })?;
        // The snapshot's own `at`, so that one instant written with two
        // offsets is one snapshot.
        Ok((format!("{}@{}", snapshot.site, snapshot.at.0), snapshot))
    })
}

fn number(text: &str, field: &str) -> Result<f64, FieldError> {
    text.trim()
        .parse::<f64>()
        .map_err(|_| FieldError::new(field, format!("{text:?} is not a number")))
}

/// Reads rows, converting each with `convert` into (id, value); counts problems.
fn read_rows<R, T>(
    path: &Path,
    convert: impl Fn(R) -> Result<(String, T), FieldError>,
) -> anyhow::Result<(Vec<T>, FileReport)>
where
    R: serde::de::DeserializeOwned,
{
    let (headers, records) = records(path)?;
    let mut report = FileReport::new(path);
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (line, record) in records {
        report.rows += 1;
        let record = match record {
            Ok(record) => record,
            Err(()) => {
                report.problem("unreadable row".into(), line);
                continue;
            }
        };
        let row: R = match record.deserialize(Some(&headers)) {
            Ok(row) => row,
            Err(error) => {
                report.problem(
                    format!("malformed row ({})", short(&error.to_string())),
                    line,
                );
                continue;
            }
        };
        match convert(row) {
            Ok((id, value)) => {
                if seen.insert(id) {
                    out.push(value);
                    report.accepted += 1;
                } else {
                    report.problem("duplicate id (first row kept)".into(), line);
                }
            }
            Err(FieldError { field, reason }) => {
                report.problem(format!("{field}: {}", kind_of(&reason)), line)
            }
        }
    }
    Ok((out, report))
}

/// Every row of a `.csv` or `.parquet` export, streamed, as a text record
/// with its line (CSV: the file's line; Parquet: the row's number, the
/// header counting as line 1, as in the CSV), or `Err` where the row cannot
/// be read.
type Records = Box<dyn Iterator<Item = (u64, Result<csv::StringRecord, ()>)>>;

fn records(path: &Path) -> anyhow::Result<(csv::StringRecord, Records)> {
    if path.extension().is_some_and(|e| e == "parquet") {
        let (header, rows) = crate::parquet_io::records(path)?;
        let rows = rows.enumerate().map(|(i, row)| {
            let trimmed = row.map(|r| r.iter().map(str::trim).collect());
            if let Err(error) = &trimmed {
                eprintln!("{error}");
            }
            (i as u64 + 2, trimmed.map_err(|_| ()))
        });
        return Ok((header, Box::new(rows)));
    }
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let headers = reader.headers()?.clone();
    let rows = reader.into_records().map(|record| match record {
        Ok(record) => (record.position().map_or(0, |p| p.line()), Ok(record)),
        Err(error) => (error.position().map_or(0, |p| p.line()), Err(())),
    });
    Ok((headers, Box::new(rows)))
}

/// The reason without the offending value, so that like problems group together.
fn kind_of(reason: &str) -> String {
    let reason = reason.split(", got ").next().unwrap_or(reason);
    match reason.find(" is not") {
        Some(at) if reason.starts_with('"') => format!("value{}", short(&reason[at..])),
        _ => short(reason),
    }
}

fn short(text: &str) -> String {
    let cut: String = text.chars().take(80).collect();
    match cut.find(" (") {
        Some(at) => cut[..at].to_string(),
        None => cut,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("detour-csv-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    const HEADER: &str = "shipment_id,carrier,origin,destination,scheduled_departure,scheduled_arrival,actual_departure,actual_arrival,status\n";

    #[test]
    fn messy_shipments_are_counted_with_line_numbers_and_never_crash() {
        let text = [
            HEADER,
            // 2: fine, UTC
            "S1,XPO,ATL,JFK,2026-03-01T08:00:00Z,2026-03-01T20:00:00Z,2026-03-01T08:05:00Z,2026-03-01T20:30:00Z,delivered\n",
            // 3: fine, other offset, earlier than line 2 (out of order), unknown carrier
            "S2,NEWCO,New York,BOS,2026-02-28T03:00:00-05:00,2026-02-28T12:00:00-05:00,,,cancelled\n",
            // 4: duplicate id
            "S1,XPO,ATL,JFK,2026-03-02T08:00:00Z,2026-03-02T20:00:00Z,,,in_transit\n",
            // 5: unparsable time
            "S3,XPO,ATL,JFK,March 3rd,2026-03-03T20:00:00Z,,,in_transit\n",
            // 6: delivered without an arrival time
            "S4,XPO,ATL,JFK,2026-03-03T08:00:00Z,2026-03-03T20:00:00Z,,,delivered\n",
            // 7: unknown status
            "S5,XPO,ATL,JFK,2026-03-03T08:00:00Z,2026-03-03T20:00:00Z,,,lost\n",
            // 8: missing carrier
            "S6,,ATL,JFK,2026-03-03T08:00:00Z,2026-03-03T20:00:00Z,,,in_transit\n",
            // 9: too few columns
            "S7,XPO,ATL\n",
            // 10: another unparsable time, to show grouping
            "S8,XPO,ATL,JFK,2026-03-03T08:00:00Z,tomorrow,,,in_transit\n",
        ]
        .concat();
        let (shipments, report) = read_shipments(&write("shipments.csv", &text)).unwrap();
        assert_eq!(report.rows, 9);
        assert_eq!(report.accepted, 2);
        assert_eq!(shipments.len(), 2);
        assert_eq!(shipments[1].origin, "New York");
        assert_eq!(
            shipments[1].scheduled_departure.to_rfc3339(),
            "2026-02-28T08:00:00Z"
        );
        let lines = |problem: &str| report.problems[problem].first_lines.clone();
        assert_eq!(lines("duplicate id (first row kept)"), [4]);
        assert_eq!(
            lines("scheduled_departure: value is not an RFC 3339 time"),
            [5]
        );
        assert_eq!(
            lines("scheduled_arrival: value is not an RFC 3339 time"),
            [10]
        );
        assert_eq!(
            lines("actual_arrival: is required when status is DELIVERED"),
            [6]
        );
        assert_eq!(lines("status: unknown status \"lost\""), [7]);
        assert_eq!(lines("carrier: is required"), [8]);
        let malformed: usize = report
            .problems
            .iter()
            .filter(|(k, _)| k.starts_with("malformed row") || k.starts_with("unreadable"))
            .map(|(_, p)| p.count)
            .sum();
        assert_eq!(malformed, 1, "{:?}", report.problems);
    }

    #[test]
    fn times_outside_the_years_the_models_know_are_counted() {
        let text = [
            HEADER,
            "S1,XPO,ATL,JFK,1985-03-01T08:00:00Z,1985-03-01T20:00:00Z,,,in_transit\n",
            "S2,XPO,ATL,JFK,2026-03-01T08:00:00Z,2026-03-01T20:00:00Z,,2101-01-01T00:00:00Z,delivered\n",
            "S3,XPO,ATL,JFK,1990-01-01T00:00:00Z,1990-01-01T12:00:00Z,,,in_transit\n",
        ]
        .concat();
        let (shipments, report) = read_shipments(&write("window.csv", &text)).unwrap();
        assert_eq!(shipments.len(), 1, "{:?}", report.problems);
        let lines = |problem: &str| report.problems[problem].first_lines.clone();
        assert_eq!(
            lines("scheduled_departure: value is not within the years Detour accepts"),
            [2]
        );
        assert_eq!(
            lines("actual_arrival: value is not within the years Detour accepts"),
            [3]
        );
    }

    #[test]
    fn orders_and_site_metrics_validate_numbers() {
        let orders = "order_id,created_at,channel,site,destination_region,promise_at,line_count,units,priority,outcome\n\
            O1,2026-03-01T08:00:00Z,web,ATL,JFK,2026-03-03T08:00:00Z,2,3,express,late\n\
            O2,2026-03-01T08:00:00Z,web,ATL,JFK,2026-03-03T08:00:00Z,2,-3,standard,\n\
            O3,2026-03-01T08:00:00Z,web,ATL,JFK,2026-03-03T08:00:00Z,two,3,standard,\n\
            O4,2026-03-01T08:00:00Z,web,ATL,JFK,2026-02-03T08:00:00Z,1,3,standard,\n";
        let (rows, report) = read_orders(&write("orders.csv", orders)).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            report.problems["units: must be a finite number within [0, 1e9]"].first_lines,
            [3]
        );
        assert_eq!(
            report.problems["line_count: value is not a number"].first_lines,
            [4]
        );
        assert_eq!(
            report.problems["promise_at: is before created_at"].first_lines,
            [5]
        );

        let metrics = "site,time,backlog,labour,units_picked,dock_utilisation\n\
            ATL,2026-03-01T08:00:00Z,10,5,100,0.5\n\
            ATL,2026-03-01T09:00:00Z,NaN,5,100,0.5\n\
            ATL,2026-03-01T10:00:00Z,10,5,100,1.5\n";
        let (rows, report) = read_site_metrics(&write("site_metrics.csv", metrics)).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(report.rejected(), 2);
    }
}
