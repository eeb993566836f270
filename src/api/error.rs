//! Errors as the API reports them: [`ApiError`], every conversion into it from
//! the core's errors, and the one exhaustive mapping to [`tonic::Status`] (and
//! to the per-item errors of streams).

use crate::domain::FieldError;
use crate::features::FeatureError;
use crate::ingest::IngestError;
use crate::lifecycle::LifecycleError;
use crate::pb;
use crate::planning::PlanningError;
use crate::scoring::UnknownCode;

/// Why a request failed, as the API reports it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed; `field` names the offending field.
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// The field's name as the request spells it (e.g. "shipment.carrier").
        field: String,
        /// What is wrong with it, in plain words.
        reason: String,
    },
    /// The named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The state does not allow the request now.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The thing to create exists already, with other content.
    #[error("{0}")]
    AlreadyExists(String),
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
            ApiError::FailedPrecondition(_) => "FAILED_PRECONDITION",
            ApiError::AlreadyExists(_) => "ALREADY_EXISTS",
            ApiError::Unavailable(_) => "UNAVAILABLE",
            ApiError::DeadlineExceeded(_) => "DEADLINE_EXCEEDED",
            ApiError::Internal(_) => "INTERNAL",
        }
    }

    /// The field at fault (empty unless the argument was invalid) and why.
    pub fn into_field_and_reason(self) -> (String, String) {
        match self {
            ApiError::InvalidArgument { field, reason } => (field, reason),
            other => (String::new(), other.to_string()),
        }
    }
}

impl From<FieldError> for ApiError {
    /// A domain rule broken: the field (with its path, once prefixed) and why.
    fn from(error: FieldError) -> Self {
        ApiError::invalid(error.field, error.reason)
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
            ApiError::FailedPrecondition(_) => tonic::Status::failed_precondition(message),
            ApiError::AlreadyExists(_) => tonic::Status::already_exists(message),
            ApiError::Unavailable(_) => tonic::Status::unavailable(message),
            ApiError::DeadlineExceeded(_) => tonic::Status::deadline_exceeded(message),
            ApiError::Internal(_) => tonic::Status::internal(message),
        }
    }
}

impl From<PlanningError> for ApiError {
    fn from(error: PlanningError) -> Self {
        match error {
            PlanningError::NotFound { .. } => ApiError::NotFound(error.to_string()),
            PlanningError::Store(error) => error.into(),
            // Named under the request's `order` field, as scoring names it.
            PlanningError::UnknownCode(unknown) => unknown_code(&unknown, ""),
        }
    }
}

/// A code the network does not know: NOT_FOUND, naming the field by its path
/// under `at` (empty for a unary request).
pub fn unknown_code(error: &UnknownCode, at: &str) -> ApiError {
    let message = error.to_string();
    ApiError::NotFound(if at.is_empty() {
        message
    } else {
        format!("{at}.{message}")
    })
}

impl From<LifecycleError> for ApiError {
    fn from(error: LifecycleError) -> Self {
        match error {
            // The artifact or request is at fault; the message names the file
            // or the field.
            LifecycleError::Invalid(reason) => ApiError::invalid("request", reason),
            LifecycleError::NotFound(m) => ApiError::NotFound(m),
            LifecycleError::Precondition(m) => ApiError::FailedPrecondition(m),
            LifecycleError::Exists(m) => ApiError::AlreadyExists(m),
            LifecycleError::Unavailable(m) => ApiError::Unavailable(m),
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(error: IngestError) -> Self {
        match error {
            IngestError::Empty | IngestError::TooMany(_) => {
                ApiError::invalid("events", error.to_string())
            }
            // Any store failure is "not acknowledged, retry": the caller's
            // action is the same whatever the cause.
            IngestError::Store { .. } => ApiError::Unavailable(error.to_string()),
        }
    }
}

/// An error for one stream item.
pub fn item_error(error: &ApiError) -> pb::ItemError {
    let (field, message) = error.clone().into_field_and_reason();
    pb::ItemError {
        code: error.code_name().to_string(),
        field,
        message,
    }
}
