//! What a run reports: throughput and latency percentiles of the measured calls,
//! as one text line (and the first error, if any) or one JSON line, the format
//! `bench/*.sh` parse.

use crate::Mode;
use crate::worker::Tally;

/// The result of a run.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    mode: Mode,
    concurrency: usize,
    batch: usize,
    requests: u64,
    errors: u64,
    seconds: f64,
    requests_per_second: f64,
    items_per_second: f64,
    p50_us: f64,
    p90_us: f64,
    p99_us: f64,
    max_us: f64,
    first_error: Option<String>,
}

impl Report {
    /// The report of `tally`, measured over `seconds`, of `mode` at
    /// `concurrency` with `batch` items per request (where the mode has items).
    pub fn new(mode: Mode, concurrency: usize, batch: usize, seconds: f64, tally: Tally) -> Self {
        let mut latencies = tally.latencies;
        latencies.sort_unstable();
        let items = match mode {
            Mode::Batch | Mode::Stream | Mode::Ingest | Mode::V2 => batch as f64,
            _ => 1.0,
        };
        let done = latencies.len() as u64;
        Report {
            mode,
            concurrency,
            batch: if items > 1.0 { batch } else { 1 },
            requests: done,
            errors: tally.errors,
            seconds,
            requests_per_second: done as f64 / seconds,
            items_per_second: done as f64 * items / seconds,
            p50_us: percentile(&latencies, 0.50),
            p90_us: percentile(&latencies, 0.90),
            p99_us: percentile(&latencies, 0.99),
            max_us: latencies.last().map_or(f64::NAN, |v| *v as f64),
            first_error: tally.first_error,
        }
    }

    /// Prints the report: one JSON line, or a text line then the first error.
    pub fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string(self)?);
        } else {
            println!(
                "{:?} c={} batch={}: {} requests in {:.2} s ({} errors) — {:.0} req/s, {:.0} items/s; \
                 latency µs p50 {:.0} p90 {:.0} p99 {:.0} max {:.0}",
                self.mode,
                self.concurrency,
                self.batch,
                self.requests,
                self.seconds,
                self.errors,
                self.requests_per_second,
                self.items_per_second,
                self.p50_us,
                self.p90_us,
                self.p99_us,
                self.max_us
            );
            if let Some(error) = &self.first_error {
                println!("first error: {error}");
            }
        }
        Ok(())
    }
}

/// The `q` quantile of sorted latencies (nearest rank), NaN when there are none.
fn percentile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize] as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_ranks() {
        let sorted: Vec<u32> = (1..=101).collect();
        assert_eq!(percentile(&sorted, 0.50), 51.0);
        assert_eq!(percentile(&sorted, 0.90), 91.0);
        assert_eq!(percentile(&sorted, 0.99), 100.0);
        assert_eq!(percentile(&[7], 0.99), 7.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn the_json_line_has_the_fields_the_bench_scripts_read() {
        let tally = Tally {
            latencies: vec![300, 100, 200, 400],
            errors: 1,
            first_error: Some("Unavailable: down".into()),
        };
        let report = Report::new(Mode::Batch, 4, 20, 2.0, tally);
        let json: serde_json::Value = serde_json::to_value(&report).unwrap();
        assert_eq!(json["mode"], "batch");
        assert_eq!(json["batch"], 20);
        assert_eq!(json["requests"], 4);
        assert_eq!(json["errors"], 1);
        assert_eq!(json["requests_per_second"], 2.0);
        assert_eq!(json["items_per_second"], 40.0);
        assert_eq!(json["p50_us"], 300.0);
        assert_eq!(json["max_us"], 400.0);
        assert_eq!(json["first_error"], "Unavailable: down");
        // A mode of single calls reports batch 1 whatever --batch was.
        let unary = Report::new(Mode::Unary, 1, 100, 1.0, Tally::default());
        let json = serde_json::to_value(&unary).unwrap();
        assert_eq!(json["batch"], 1);
        assert!(json["p99_us"].is_null(), "NaN is written as null");
    }
}
