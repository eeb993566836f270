//! The rules every source of domain values shares — the gRPC API, the trainer's
//! CSV reader, and whatever comes next: ids, codes, quantities, shares and times.
//! Each rule names the field at fault in a [`FieldError`]; a caller that reads
//! nested input prefixes the name with its own path ([`FieldError::under`]).
//! Knows no wire format and no file format.

use std::fmt;
use std::ops::Range;

use super::Timestamp;

/// Longest id accepted (event, order and shipment ids).
pub const MAX_ID_LEN: usize = 128;
/// Longest code accepted (carriers, sites, locations, SKUs).
pub const MAX_CODE_LEN: usize = 64;
/// Longest free-form label accepted (an order's sales channel), in characters.
pub const MAX_LABEL_LEN: usize = 64;
/// Largest quantity accepted (units, backlog, labour, stock, costs). Far above
/// any real site's numbers, and far enough below `f64::MAX` that the decayed
/// sums of the feature store cannot overflow to infinity and stay there.
pub const MAX_QUANTITY: f64 = 1e9;

/// The times Detour accepts: 1990-01-01T00:00:00Z up to (not including)
/// 2100-01-01T00:00:00Z. The models were trained on, and the feature counters
/// decay over, years well inside this; a time outside it is a mistake (a zero, a
/// unit slip) rather than a question the models can answer.
pub const TIME_WINDOW: Range<Timestamp> = Timestamp(631_152_000_000)..Timestamp(4_102_444_800_000);

/// A value that breaks a rule: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's name (`"scheduled_departure"`), or its path once prefixed
    /// (`"items[3].shipment.scheduled_departure"`).
    pub field: String,
    /// Why, in words that can be shown to the caller.
    pub reason: String,
}

impl FieldError {
    /// A rule broken by `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same error with `path` in front of the field ("shipment" +
    /// "carrier" = "shipment.carrier"); an empty path changes nothing.
    pub fn under(mut self, path: &str) -> Self {
        if !path.is_empty() {
            self.field = format!("{path}.{}", self.field);
        }
        self
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for FieldError {}

/// A required id: 1..=128 characters, no whitespace or control characters.
pub fn id(value: &str, field: &str) -> Result<String, FieldError> {
    if value.is_empty() {
        return Err(FieldError::new(field, "is required"));
    }
    if value.chars().count() > MAX_ID_LEN
        || value.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(FieldError::new(
            field,
            format!("must be 1 to {MAX_ID_LEN} characters with no spaces"),
        ));
    }
    Ok(value.to_string())
}

/// A required code (carrier, site, location, SKU): at most 64 characters, no
/// control characters and no ':' (the separator of feature-store keys).
/// Surrounding spaces are trimmed; inner spaces are kept ("New York").
pub fn code(value: &str, field: &str) -> Result<String, FieldError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(FieldError::new(field, "is required"));
    }
    if value.chars().count() > MAX_CODE_LEN || value.chars().any(|c| c.is_control() || c == ':') {
        return Err(FieldError::new(
            field,
            format!(
                "{} is not a code (at most {MAX_CODE_LEN} characters, no ':')",
                echoed(value)
            ),
        ));
    }
    Ok(value.to_string())
}

/// A finite quantity within [0, [`MAX_QUANTITY`]].
pub fn quantity(value: f64, field: &str) -> Result<f64, FieldError> {
    if value.is_finite() && (0.0..=MAX_QUANTITY).contains(&value) {
        Ok(value)
    } else {
        Err(FieldError::new(
            field,
            format!("must be a finite number within [0, 1e9], got {value}"),
        ))
    }
}

/// An optional free-form label (a sales channel), kept as given: at most
/// [`MAX_LABEL_LEN`] characters, no control characters; empty is allowed.
pub fn label(value: &str, field: &str) -> Result<String, FieldError> {
    if value.chars().count() > MAX_LABEL_LEN || value.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            format!(
                "{} is not a label (at most {MAX_LABEL_LEN} characters, no control characters)",
                echoed(value)
            ),
        ));
    }
    Ok(value.to_string())
}

/// A share within [0, 1] (e.g. of dock doors in use).
pub fn share(value: f64, field: &str) -> Result<f64, FieldError> {
    let value = quantity(value, field)?;
    if value > 1.0 {
        return Err(FieldError::new(
            field,
            format!("must be within [0, 1], got {value}"),
        ));
    }
    Ok(value)
}

/// A time as a source gave it, before the rules have looked at it. Sources turn
/// their own form into this (RFC 3339 text, a wire message) and the constructors
/// decide, naming the field, whether it is required and in [`TIME_WINDOW`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeInput {
    /// Not given: empty text, an unset message field.
    Absent,
    /// A well-formed instant.
    At(Timestamp),
    /// Given, but not a time; the reason says why (and quotes the value).
    Malformed(String),
}

impl TimeInput {
    /// RFC 3339 text with any UTC offset; empty text is absent (blank text
    /// is malformed, as it always was: the CSV reader trims fields first).
    pub fn rfc3339(text: &str) -> Self {
        if text.is_empty() {
            return TimeInput::Absent;
        }
        match Timestamp::parse_rfc3339(text) {
            Ok(at) => TimeInput::At(at),
            Err(error) => TimeInput::Malformed(format!(
                "{} is not an RFC 3339 time ({error})",
                echoed(text)
            )),
        }
    }
}

impl From<Timestamp> for TimeInput {
    fn from(at: Timestamp) -> Self {
        TimeInput::At(at)
    }
}

impl From<Option<Timestamp>> for TimeInput {
    fn from(at: Option<Timestamp>) -> Self {
        at.map_or(TimeInput::Absent, TimeInput::At)
    }
}

/// An optional time: absent is `None`; a given time must be well-formed and
/// within [`TIME_WINDOW`].
pub fn optional_time(input: TimeInput, field: &str) -> Result<Option<Timestamp>, FieldError> {
    match input {
        TimeInput::Absent => Ok(None),
        TimeInput::Malformed(reason) => Err(FieldError::new(field, reason)),
        TimeInput::At(at) if TIME_WINDOW.contains(&at) => Ok(Some(at)),
        TimeInput::At(at) => Err(FieldError::new(
            field,
            format!(
                "{:?} is not within the years Detour accepts ({} up to {})",
                shown(at),
                TIME_WINDOW.start,
                TIME_WINDOW.end
            ),
        )),
    }
}

/// RFC 3339 where chrono can write it, else the raw milliseconds.
fn shown(at: Timestamp) -> String {
    match at.to_rfc3339() {
        text if text.is_empty() => format!("{} ms since 1970", at.0),
        text => text,
    }
}

/// A required time: as [`optional_time`], and absent is an error.
pub fn time(input: TimeInput, field: &str) -> Result<Timestamp, FieldError> {
    optional_time(input, field)?.ok_or_else(|| FieldError::new(field, "is required"))
}

/// Most characters of a refused value an error message quotes.
pub const MAX_ECHOED_CHARS: usize = 64;

/// A refused value as an error message quotes it: in quotes, and cut to
/// [`MAX_ECHOED_CHARS`] characters plus its length when longer, so that an
/// error about a huge value stays small (gRPC clients refuse status messages
/// over their metadata limit, 16 KiB in the Python and C clients, and would
/// report `RESOURCE_EXHAUSTED` instead of the error).
pub fn echoed(value: &str) -> String {
    match value.char_indices().nth(MAX_ECHOED_CHARS) {
        None => format!("{value:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &value[..cut], value.len()),
    }
}
