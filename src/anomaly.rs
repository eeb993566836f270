//! Anomaly detection: streaming detectors that score each new point of a
//! series from its past alone, in constant time and bounded memory, with a
//! score that is a tail probability (so one threshold means the same on every
//! series). `detour-train detect` runs them over any series offline.
//!
//! Boundary: no IO, no awaits; detector state is plain data (serde) so a
//! feature store can keep it.

pub mod rate;
pub mod series;
pub mod tail;

pub use rate::{RateDetector, RateScored, RateSettings};
pub use series::{DEFAULT_THRESHOLD, DetectorSettings, Scored, SeriesDetector};
pub use tail::Direction;
