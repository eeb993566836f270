//! The alert log's positions and what subscribers are sent.

use std::fmt;
use std::sync::Arc;

use crate::anomaly::{Alert, Change};

/// A position in the alert log: a Redis Stream id (`ms-seq`), or with the
/// in-memory log, `n-0`. Subscribers resume after the last one they saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Cursor {
    /// Milliseconds (Redis) or the entry's number (memory).
    pub major: u64,
    /// Sequence within the millisecond.
    pub minor: u64,
}

impl Cursor {
    /// Before every entry: resuming from it replays what the log still holds.
    pub const START: Cursor = Cursor { major: 0, minor: 0 };

    /// The cursor a text names (`"1700000000000-3"`; `"0"` is the start).
    /// The last possible position is not one: nothing can follow it (and
    /// Redis refuses a range after it).
    pub fn parse(text: &str) -> Option<Cursor> {
        let (major, minor) = text.split_once('-').unwrap_or((text, "0"));
        let cursor = Cursor {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        };
        (cursor.major < u64::MAX).then_some(cursor)
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.major, self.minor)
    }
}

/// One entry of the alert log.
#[derive(Debug, Clone, PartialEq)]
pub struct Logged {
    /// Where it is in the log.
    pub cursor: Cursor,
    /// What happened.
    pub change: Change,
    /// The alert as it stands after the change.
    pub alert: Alert,
}

/// What the live feed carries to this replica's subscribers.
#[derive(Debug, Clone)]
pub enum FeedItem {
    /// An entry of the log, in log order.
    Entry(Arc<Logged>),
    /// The log could not be read (Redis down): subscribers end, told to
    /// resume from their cursor.
    Interrupted(String),
}

/// The alert log's entry as stored: the change and the alert, in JSON.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct StoredEntry {
    pub change: Change,
    pub alert: Alert,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_parse_and_print_alike() {
        let cursor = Cursor::parse("1700000000000-3").unwrap();
        assert_eq!(cursor.to_string(), "1700000000000-3");
        assert_eq!(Cursor::parse("0"), Some(Cursor::START));
        for bad in ["", "x", "1-", "-1", "1-2-3", "18446744073709551615-0"] {
            assert_eq!(Cursor::parse(bad), None, "{bad}");
        }
    }
}
