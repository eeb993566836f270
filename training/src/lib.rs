//! Detour's training side: a seeded network simulator, CSV readers, a replay that
//! builds point-in-time datasets through the service's own feature code, model
//! fitting and held-out evaluation, and artifact writing.
//!
//! - [`simulate`] / [`network_gen`]: the simulator and the network it runs on.
//! - [`csvio`]: the CSV exports (README, "Your own history"), read through the
//!   domain's checked constructors, as the API reads its messages;
//!   [`parquet_io`]: the same exports as Parquet, and `dataset`'s Parquet output.
//! - [`replay`]: history → labelled feature vectors, with no leakage.
//! - [`fit`] / [`boost`] / [`metrics`]: the two learners, calibration, held-out
//!   metrics; [`report`]: the reports written beside each artifact.
//! - [`train`]: the `train` command end to end (read, replay, fit, write).
//! - [`dataset`]: the `dataset` command (the rows `train` fits on, as CSV).
//! - [`import`]: the `import` command (LightGBM, XGBoost and scikit-learn
//!   trees, and feed-forward networks, in as artifacts served natively).
//! - [`evaluate`]: the `evaluate` command (score a period with shipped artifacts).
//! - [`recommend_eval`]: `evaluate-recommendations` (do the recommendations help?).
//! - [`detect`] / [`anomaly_eval`]: the service's anomaly detectors over any
//!   series, and `evaluate-anomalies` (do they find the simulator's
//!   labelled disruptions, against a rolling z-score?).
//! - [`service_replay`]: history through the service's ingest and monitor,
//!   for `evaluate-anomalies` and for the open alerts a replay's decisions
//!   read.

#![forbid(unsafe_code)]

pub mod anomaly_eval;
pub mod boost;
pub mod csvio;
pub mod dataset;
pub mod detect;
pub mod evaluate;
pub mod fit;
pub mod import;
pub mod metrics;
pub mod network_gen;
pub mod parquet_io;
pub mod publish;
pub mod recommend_eval;
pub mod replay;
pub mod report;
pub mod service_replay;
pub mod sim_world;
pub mod simulate;
pub mod train;
