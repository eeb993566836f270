//! gRPC handlers: thin adapters that validate a request, call the core and map
//! the result. With [`crate::pb`] and [`crate::app`], the only code that knows
//! tonic and protobuf.
//!
//! Every error leaves through the one exhaustive mapping from [`ApiError`] to
//! [`tonic::Status`], in [`error`] with every other conversion into it.

pub mod admin;
pub mod anomalies;
pub mod codec;
pub mod convert;
pub mod error;
pub mod ingest;
pub mod recommend;
pub mod score_features;
pub mod scoring;
pub mod status_codes;

pub use admin::ModelAdminService;
pub use anomalies::AnomaliesService;
pub use error::ApiError;
pub use ingest::EventIngestService;
pub use recommend::RecommendationsService;
pub use scoring::RiskScoringService;
