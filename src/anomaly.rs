//! Anomaly detection: streaming detectors that score each new point of a
//! series from its past alone, in constant time and bounded memory, with a
//! score that is a tail probability (so one threshold means the same on every
//! series); the episodes they open, and what an alert says.
//! `detour-train detect` runs the detectors over any series offline; the
//! service runs them over the series its ingest keeps (`crate::monitor`).
//!
//! Boundary: no IO, no awaits; detector state is plain data (serde) so a
//! store can keep it.

pub mod alert;
pub mod episode;
pub mod rate;
pub mod series;
pub mod tail;

pub use alert::{
    Acknowledgement, Alert, AlertStatus, AnomalyKind, AtRisk, Change, Entities, Evidence, Severity,
    Suggestion,
};
pub use episode::{EpisodeRules, Episodes, Transition};
pub use rate::{RateDetector, RateScored, RateSettings};
pub use series::{
    Bucket, Buckets, DEFAULT_THRESHOLD, DetectorSettings, Moments, Scored, SeriesDetector,
    SeriesMeta,
};
pub use tail::Direction;
