//! Detour's training side: a seeded network simulator, CSV readers, a replay that
//! builds point-in-time datasets through the service's own feature code, model
//! fitting and held-out evaluation, and artifact writing.
//!
//! - [`simulate`] / [`network_gen`]: the simulator and the network it runs on.
//! - [`csvio`]: the CSV exports of DESIGN.md, read with the API's validation.
//! - [`replay`]: history → labelled feature vectors, with no leakage.
//! - [`fit`] / [`metrics`]: fitting, calibration and held-out metrics.
//! - [`train`]: the `train` command end to end (read, replay, fit, write).

pub mod csvio;
pub mod fit;
pub mod metrics;
pub mod network_gen;
pub mod replay;
pub mod simulate;
pub mod train;
