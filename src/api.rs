//! gRPC handlers: thin adapters that validate a request, call the core and map
//! the result. With [`crate::pb`] and [`crate::app`], the only code that knows
//! tonic and protobuf.
//!
//! Every error leaves through the one exhaustive mapping from [`ApiError`] to
//! [`tonic::Status`].

pub mod convert;
pub mod ingest;
pub mod recommend;
pub mod scoring;

pub use ingest::EventIngestService;
pub use recommend::RecommendationsService;
pub use scoring::RiskScoringService;

use crate::features::FeatureError;

/// Why a request failed, as the API reports it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed; `field` names the offending field.
    #[error("{field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    /// The named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A dependency could not do its part; retrying later may succeed.
    #[error("{0}")]
    Unavailable(String),
    /// The dependency did not answer in time.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// A bug or corrupt data on our side.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// A malformed field.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ApiError::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The gRPC code name of this error ("INVALID_ARGUMENT").
    pub fn code_name(&self) -> &'static str {
        match self {
            ApiError::InvalidArgument { .. } => "INVALID_ARGUMENT",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::Unavailable(_) => "UNAVAILABLE",
            ApiError::DeadlineExceeded(_) => "DEADLINE_EXCEEDED",
            ApiError::Internal(_) => "INTERNAL",
        }
    }
}

impl From<FeatureError> for ApiError {
    fn from(error: FeatureError) -> Self {
        match error {
            FeatureError::Unavailable { .. } => ApiError::Unavailable(error.to_string()),
            FeatureError::Timeout(_) => ApiError::DeadlineExceeded(error.to_string()),
            FeatureError::Corrupt { .. } => ApiError::Internal(error.to_string()),
        }
    }
}

impl From<ApiError> for tonic::Status {
    fn from(error: ApiError) -> Self {
        let message = error.to_string();
        match error {
            ApiError::InvalidArgument { .. } => tonic::Status::invalid_argument(message),
            ApiError::NotFound(_) => tonic::Status::not_found(message),
            ApiError::Unavailable(_) => tonic::Status::unavailable(message),
            ApiError::DeadlineExceeded(_) => tonic::Status::deadline_exceeded(message),
            ApiError::Internal(_) => tonic::Status::internal(message),
        }
    }
}
