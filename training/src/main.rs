//! `detour-train`: simulate a network's history, and train Detour's models on a
//! history (simulated or exported).

#![forbid(unsafe_code)]

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use detour::domain::Timestamp;
use detour::recommend::Policy;
use detour_training::boost::BoostSettings;
use detour_training::detect::{self, DetectSettings};
use detour_training::evaluate::{self, EvaluateSettings};
use detour_training::recommend_eval::{self, RecommendEvalSettings};
use detour_training::replay::ReplaySettings;
use detour_training::simulate::{self, SimSettings};
use detour_training::train::{self, TrainSettings};

#[derive(Debug, Parser)]
#[command(version, about = "Simulator and trainer for Detour's models")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Writes a simulated history: orders.csv, shipments.csv, site_metrics.csv,
    /// network.toml and truth_shipments.csv.
    Simulate {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long, default_value_t = 120)]
        days: u32,
        /// Mean orders per day over all sites.
        #[arg(long, default_value_t = 4800.0)]
        orders_per_day: f64,
        /// First hour simulated (RFC 3339).
        #[arg(long, default_value = "2026-01-05T00:00:00Z")]
        start: String,
        /// Also inject one-carrier regional disruptions and site output
        /// drops (for evaluate-anomalies); changes the history drawn.
        #[arg(long)]
        inject_anomalies: bool,
    },
    /// Replays a simulated history (simulate --inject-anomalies) through the
    /// service's ingest and anomaly monitor and scores its alerts against
    /// the labelled disruptions (truth_anomalies.csv), beside a rolling
    /// z-score baseline.
    EvaluateAnomalies {
        /// The simulation's folder.
        #[arg(long)]
        data: PathBuf,
        /// Days at the start that only teach the detectors.
        #[arg(long, default_value_t = 14.0)]
        warmup_days: f64,
        /// Also write every alert the service opened to this CSV.
        #[arg(long)]
        alerts_out: Option<PathBuf>,
    },
    /// Runs the service's anomaly detectors over time series (columns
    /// series_id, timestamp, value): each row gets anomaly_score (1 − its tail
    /// probability under its series' past) and alert (score ≥ threshold).
    Detect {
        /// Input CSV.
        #[arg(long)]
        series: PathBuf,
        /// Output CSV: the input's rows plus anomaly_score and alert.
        #[arg(long)]
        out: PathBuf,
        /// Alert at or above this score (about (1 − threshold) of ordinary
        /// points alert).
        #[arg(long, default_value_t = detour::anomaly::DEFAULT_THRESHOLD)]
        threshold: f64,
        /// Which departures count: up, down or both.
        #[arg(long, default_value = "both")]
        direction: String,
        /// Points each series sees before any is scored.
        #[arg(long, default_value_t = 48)]
        min_history: u64,
    },
    /// Writes a synthetic benchmark network (many sites, every carrier on every lane).
    Network {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 50)]
        sites: usize,
        #[arg(long, default_value_t = 10)]
        carriers: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Trains every family the data supports and writes artifacts into --out.
    Train {
        /// Folder with shipments.csv, orders.csv, site_metrics.csv (any of them)
        /// and network.toml.
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Use only what was known by this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        #[command(flatten)]
        replay: ReplayArgs,
        /// L2 penalty of the logistic regressions.
        #[arg(long, default_value_t = 1.0)]
        l2: f64,
        /// Most trees per boosted model (fewer when validation loss stops falling).
        #[arg(long, default_value_t = 300)]
        max_trees: usize,
        /// Depth of each boosted tree.
        #[arg(long, default_value_t = 5)]
        max_depth: usize,
        /// Version written into the manifests; derived from the weights if unset.
        #[arg(long)]
        version: Option<String>,
        /// Decide every shipment this many hours before departure, instead of
        /// each at one of 0, 2, 6, 12, 24 and 48 h (a model for one horizon).
        #[arg(long)]
        lead_hours: Option<f64>,
        /// Make the new versions active in `--out`'s state.json (for a
        /// repository no server is using; a running server takes them through
        /// `detour admin deploy` and `promote`).
        #[arg(long)]
        activate: bool,
    },
    /// Replays a held-out period of a history and compares the realised failure
    /// rate and cost of the current plan, the top recommendation, the naive
    /// policies and (simulated histories) the best choice in hindsight, for
    /// reroutes and reallocations.
    EvaluateRecommendations {
        /// A folder of exports. With the truth_*.csv files `simulate` writes,
        /// options not taken are scored against them; without, off policy.
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = "models")]
        models: PathBuf,
        /// Start of the evaluated period; the models' held-out test slice if unset.
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        /// Hours before departure that reroutes are decided.
        #[arg(long, default_value_t = 24.0)]
        lead_hours: f64,
        /// Also write the tables (Markdown) to this file.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Cost of a failed leg in ranking and scoring [default: the service's].
        #[arg(long)]
        reroute_failure_cost: Option<f64>,
        /// Cost of a fallen-out order [default: the service's].
        #[arg(long)]
        reallocation_failure_cost: Option<f64>,
        /// A shipments.csv whose legs score the paired estimate of a logged
        /// history instead of the history's own: a fuller record of the same
        /// carriers when the log replayed is thin.
        #[arg(long)]
        outcomes: Option<PathBuf>,
        /// Replay without the anomaly monitor: no alert is ever open to
        /// the models (their alert features are 0), to measure what the
        /// alerts add.
        #[arg(long)]
        without_alerts: bool,
    },
    /// Writes the point-in-time feature matrix `train` fits on for one
    /// family, as CSV: a row per decision with its entity id, decision time,
    /// lead (shipments), the slice `train` puts it in, every feature by name
    /// and the label — for training in your own tools on exactly the inputs
    /// the service computes.
    Dataset {
        /// A folder of exports, as `train` reads.
        #[arg(long)]
        data: PathBuf,
        /// order_fallout, site_congestion or carrier_failure.
        #[arg(long)]
        family: String,
        /// Only what was known by this time (RFC 3339), as `train --until`.
        #[arg(long)]
        until: Option<String>,
        /// The file to write (*.csv or *.parquet).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        replay: ReplayArgs,
    },
    /// Turns a model trained in Python (LightGBM text, XGBoost JSON,
    /// scikit-learn tree export, or a feed-forward network: a detour-mlp/1
    /// description beside safetensors weights) into a version of the model
    /// repository, served natively. Checks parity with the library's own probabilities
    /// (--expected) and measures it on Detour's history (--data) before
    /// anything is written.
    Import {
        /// The model file.
        #[arg(long)]
        model: PathBuf,
        /// The library that saved it; detected from the file when absent.
        #[arg(long, value_enum)]
        format: Option<detour_training::import::Format>,
        /// order_fallout, site_congestion or carrier_failure.
        #[arg(long)]
        family: String,
        /// Detour feature names of the model's inputs, in its column order,
        /// comma-separated (when the file has none, or other names).
        #[arg(long, value_delimiter = ',')]
        feature_names: Option<Vec<String>>,
        /// A CSV of rows (inputs by name, empty when missing) with the
        /// library's own probability: parity within 1e-6 is required.
        #[arg(long)]
        expected: Option<PathBuf>,
        /// The probability column of --expected.
        #[arg(long, default_value = "probability")]
        expected_column: String,
        /// Largest accepted |Δp| against --expected.
        #[arg(long, default_value_t = detour_training::import::PARITY_TOLERANCE)]
        tolerance: f64,
        /// XGBoost: keep every round, as Booster.predict does, rather than
        /// those up to best_iteration, as predict_proba does after early
        /// stopping.
        #[arg(long)]
        all_rounds: bool,
        /// Detour history (a folder of exports) to measure on, as `train`
        /// replays it: the version gets the same report as a trained one.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Only what was known by this time (RFC 3339), as `train --until`.
        #[arg(long)]
        until: Option<String>,
        /// none: serve the library's probabilities; platt or isotonic: fit
        /// that calibration on the validation slice of --data.
        #[arg(long, value_enum, default_value = "none")]
        calibrate: detour_training::import::Calibrate,
        /// The model repository to add the version to.
        #[arg(long, default_value = "models")]
        out: PathBuf,
        /// Version name (default: the library's short name and the weights'
        /// checksum).
        #[arg(long)]
        version: Option<String>,
        /// Make it the family's active version.
        #[arg(long)]
        activate: bool,
        #[command(flatten)]
        replay: ReplayArgs,
    },
    /// Scores every decision in [--from, --to) with the artifacts in --models,
    /// replaying the history before it, and writes one CSV row per decision
    /// (id, family, decision_time, probability, outcome, model_version).
    Evaluate {
        #[arg(long)]
        data: PathBuf,
        /// Start of the scored period (RFC 3339).
        #[arg(long)]
        from: String,
        /// End of the scored period (RFC 3339).
        #[arg(long)]
        to: String,
        #[arg(long, default_value = "models")]
        models: PathBuf,
        #[arg(long)]
        predictions: PathBuf,
        #[command(flatten)]
        replay: ReplayArgs,
    },
}

/// How history is replayed: what `train`, `dataset` and `evaluate` share.
#[derive(clap::Args, Debug, Clone, Copy)]
struct ReplayArgs {
    /// A delivery this late past schedule is a carrier failure.
    #[arg(long, default_value_t = 15.0)]
    sla_grace_minutes: f64,
    /// Congestion horizon in hours.
    #[arg(long, default_value_t = 8.0)]
    horizon_hours: f64,
    /// Hours before its scheduled departure a leg counts as announced (the
    /// exports hold no announcement time).
    #[arg(long, default_value_t = detour_training::replay::DEFAULT_ANNOUNCED_HOURS)]
    announced_hours: f64,
    /// Replay without the anomaly monitor: no alert is ever open to the
    /// models (their alert features are 0), to measure what the alerts add.
    #[arg(long)]
    without_alerts: bool,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Simulate {
            out,
            seed,
            days,
            orders_per_day,
            start,
            inject_anomalies,
        } => {
            let start = Timestamp::parse_rfc3339(&start).context("--start")?;
            let began = std::time::Instant::now();
            let summary = simulate::run(
                &SimSettings {
                    seed,
                    start,
                    days,
                    orders_per_day,
                    inject_anomalies,
                },
                &out,
            )?;
            println!(
                "simulated {days} days into {}: {} orders, {} shipments, {} site snapshots; \
                 shipment failure rate {:.3}, order fallout rate {:.3} ({:.1} s)",
                out.display(),
                summary.orders,
                summary.shipments,
                summary.snapshots,
                summary.shipment_failure_rate,
                summary.order_fallout_rate,
                began.elapsed().as_secs_f64()
            );
        }
        Command::Train {
            data,
            out,
            until,
            replay,
            l2,
            max_trees,
            max_depth,
            version,
            lead_hours,
            activate,
        } => {
            let until = until
                .map(|t| Timestamp::parse_rfc3339(&t).context("--until"))
                .transpose()?;
            let boost = BoostSettings {
                max_trees,
                max_depth,
                ..BoostSettings::default()
            };
            let settings = TrainSettings {
                data,
                out,
                until,
                sla_grace_minutes: replay.sla_grace_minutes,
                horizon_hours: replay.horizon_hours,
                l2,
                boost,
                version,
                lead_hours,
                announced_hours: replay.announced_hours,
                alerts: !replay.without_alerts,
                activate,
            };
            train::run(&settings)?;
        }
        Command::EvaluateAnomalies {
            data,
            warmup_days,
            alerts_out,
        } => {
            let started = std::time::Instant::now();
            let report = detour_training::anomaly_eval::run(
                &detour_training::anomaly_eval::AnomalyEvalSettings {
                    data,
                    warmup_days,
                    alerts_out,
                },
            )?;
            print!("{}", report.render());
            println!("({:.1} s)", started.elapsed().as_secs_f64());
        }
        Command::Detect {
            series,
            out,
            threshold,
            direction,
            min_history,
        } => {
            let direction = match direction.as_str() {
                "up" => detour::anomaly::Direction::Up,
                "down" => detour::anomaly::Direction::Down,
                "both" => detour::anomaly::Direction::Both,
                other => anyhow::bail!("--direction must be up, down or both, not {other:?}"),
            };
            let started = std::time::Instant::now();
            let report = detect::run(&DetectSettings {
                series,
                out: out.clone(),
                threshold,
                direction,
                min_history,
            })?;
            println!(
                "{} rows of {} series, {} scored, {} alerts ({:.3} % of scored) at threshold {threshold}; {} in {:.1} s",
                report.rows,
                report.series,
                report.scored,
                report.alerts,
                100.0 * report.alerts as f64 / report.scored.max(1) as f64,
                out.display(),
                started.elapsed().as_secs_f64()
            );
            if let Some(line) = report.first_out_of_order {
                eprintln!(
                    "{} rows came before their series' latest row (first at line {line}): \
                     each was scored against its series' past and learned as if at its latest time",
                    report.out_of_order
                );
            }
        }
        Command::Network {
            out,
            sites,
            carriers,
            seed,
        } => {
            use rand::SeedableRng;
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let network =
                detour_training::network_gen::benchmark_network(&mut rng, sites, carriers);
            std::fs::write(&out, network.to_toml())?;
            println!(
                "wrote {sites} sites and {carriers} carriers to {}",
                out.display()
            );
        }
        Command::EvaluateRecommendations {
            data,
            models,
            from,
            to,
            lead_hours,
            report,
            reroute_failure_cost,
            reallocation_failure_cost,
            outcomes,
            without_alerts,
        } => {
            let time = |t: Option<String>, flag: &str| {
                t.map(|t| Timestamp::parse_rfc3339(&t).with_context(|| flag.to_string()))
                    .transpose()
            };
            recommend_eval::run(&RecommendEvalSettings {
                data,
                models,
                from: time(from, "--from")?,
                to: time(to, "--to")?,
                lead_hours,
                report,
                outcomes,
                alerts: !without_alerts,
                reroute_policy: Policy {
                    failure_cost: reroute_failure_cost.unwrap_or(Policy::REROUTE.failure_cost),
                    ..Policy::REROUTE
                },
                reallocation_policy: Policy {
                    failure_cost: reallocation_failure_cost
                        .unwrap_or(Policy::REALLOCATION.failure_cost),
                    ..Policy::REALLOCATION
                },
            })?;
        }
        Command::Dataset {
            data,
            family,
            until,
            out,
            replay,
        } => {
            let settings = detour_training::dataset::DatasetSettings {
                data,
                family: detour_training::dataset::family(&family).context("--family")?,
                until: until
                    .map(|t| Timestamp::parse_rfc3339(&t).context("--until"))
                    .transpose()?,
                sla_grace_minutes: replay.sla_grace_minutes,
                horizon_hours: replay.horizon_hours,
                announced_hours: replay.announced_hours,
                alerts: !replay.without_alerts,
                out: out.clone(),
            };
            let summary = detour_training::dataset::run(&settings)?;
            println!(
                "wrote {} {} decisions ({} positive) to {}",
                summary.rows,
                settings.family.name(),
                summary.positives,
                out.display()
            );
        }
        Command::Import {
            model,
            format,
            family,
            feature_names,
            expected,
            expected_column,
            tolerance,
            all_rounds,
            data,
            until,
            calibrate,
            out,
            version,
            activate,
            replay,
        } => {
            let until = until
                .map(|t| Timestamp::parse_rfc3339(&t).context("--until"))
                .transpose()?;
            let settings = detour_training::import::ImportSettings {
                model,
                format,
                family: detour_training::dataset::family(&family).context("--family")?,
                feature_names,
                expected,
                expected_column,
                tolerance,
                all_rounds,
                replay: data.as_ref().map(|_| {
                    ReplaySettings::training(
                        replay.sla_grace_minutes,
                        replay.horizon_hours,
                        until,
                        None,
                        replay.announced_hours,
                        !replay.without_alerts,
                    )
                }),
                data,
                calibrate,
                out,
                version,
                activate,
            };
            let summary = detour_training::import::run(&settings)?;
            if let Some(p) = &summary.parity {
                println!(
                    "parity with the library on {} rows ({} with missing inputs): max |Δp| \
                     {:.2e}, mean {:.2e}",
                    p.rows, p.rows_with_missing, p.max_abs_diff, p.mean_abs_diff
                );
            }
            if let Some(m) = &summary.test {
                println!(
                    "held-out test slice: {} rows, ROC-AUC {:.3}, Brier {:.4}, log loss {:.4}, \
                     ECE {:.4}",
                    m.rows, m.roc_auc, m.brier, m.log_loss, m.ece
                );
            }
            let dir = summary.dir.display();
            if summary.activated {
                println!(
                    "{} version {} written to {dir} (active)",
                    settings.family.name(),
                    summary.version
                );
            } else {
                println!(
                    "{} version {} written to {dir}; deploy it to a running server with: \
                     detour admin deploy {dir} --shadow",
                    settings.family.name(),
                    summary.version
                );
            }
        }
        Command::Evaluate {
            data,
            from,
            to,
            models,
            predictions,
            replay,
        } => {
            let settings = EvaluateSettings {
                data,
                models,
                from: Timestamp::parse_rfc3339(&from).context("--from")?,
                to: Timestamp::parse_rfc3339(&to).context("--to")?,
                predictions,
                sla_grace_minutes: replay.sla_grace_minutes,
                horizon_hours: replay.horizon_hours,
                announced_hours: replay.announced_hours,
                alerts: !replay.without_alerts,
            };
            evaluate::run(&settings)?;
        }
    }
    Ok(())
}
