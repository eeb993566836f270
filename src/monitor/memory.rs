//! The monitor's state in this process: series, alerts and their log, for a
//! server without Redis. The same versioned commits as Redis, so both
//! backends run the same code above them.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use super::evaluate::SeriesState;
use super::feed::{Cursor, FeedItem, Logged};
use super::store::{Commit, LOG_ENTRIES, LoadRequest, Loaded, RECENT_ALERTS};
use crate::anomaly::{Acknowledgement, Alert, AlertStatus, Bucket, Change, Moments};

#[derive(Debug, Default)]
struct Series {
    version: u64,
    state: Option<SeriesState>,
    buckets: HashMap<Bucket, Moments>,
}

#[derive(Debug, Default)]
struct Tables {
    series: HashMap<String, Series>,
    /// Alerts by id, with when they last changed (for the recent list).
    alerts: HashMap<String, Alert>,
    recent: BTreeMap<(u64, String), ()>,
    log: VecDeque<Arc<Logged>>,
    next: u64,
    /// When this log began (ms since the epoch): every cursor's major part.
    epoch: u64,
}

/// Series, alerts and the alert log in memory.
#[derive(Debug)]
pub struct MemoryAnomalies {
    tables: Mutex<Tables>,
    feed: broadcast::Sender<FeedItem>,
}

impl MemoryAnomalies {
    /// An empty store publishing to `feed`.
    pub fn new(feed: broadcast::Sender<FeedItem>) -> Self {
        MemoryAnomalies {
            tables: Mutex::new(Tables {
                next: 1,
                epoch: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_millis() as u64),
                ..Tables::default()
            }),
            feed,
        }
    }

    pub(super) fn load(&self, requests: &[LoadRequest]) -> Vec<Loaded> {
        let tables = self.tables.lock().expect("anomaly tables poisoned");
        requests
            .iter()
            .map(|request| match tables.series.get(&request.key) {
                None => Loaded {
                    version: 0,
                    state: None,
                    buckets: request.buckets.iter().map(|b| (*b, None)).collect(),
                },
                Some(series) => Loaded {
                    version: series.version,
                    state: series.state.clone(),
                    buckets: request
                        .buckets
                        .iter()
                        .map(|b| (*b, series.buckets.get(b).copied()))
                        .collect(),
                },
            })
            .collect()
    }

    pub(super) fn commit(&self, commits: Vec<Commit>) -> Vec<bool> {
        let mut tables = self.tables.lock().expect("anomaly tables poisoned");
        let mut out = Vec::with_capacity(commits.len());
        for commit in commits {
            let series = tables.series.entry(commit.key).or_default();
            if series.version != commit.expected {
                out.push(false);
                continue;
            }
            series.version += 1;
            series.state = Some(commit.state);
            for (bucket, moments) in commit.buckets {
                series.buckets.insert(bucket, moments);
            }
            for (change, alert) in commit.alerts {
                let entry = tables.append(change, alert);
                // No subscriber is fine.
                let _ = self.feed.send(FeedItem::Entry(entry));
            }
            out.push(true);
        }
        out
    }

    pub(super) fn since(&self, after: Cursor, limit: usize) -> Result<Vec<Logged>, Cursor> {
        let tables = self.tables.lock().expect("anomaly tables poisoned");
        let oldest = tables.log.front().map_or(
            Cursor {
                major: tables.epoch,
                minor: tables.next,
            },
            |e| e.cursor,
        );
        // A cursor of an earlier process, or one whose next entry was
        // trimmed away, has lost its place.
        let lost = after != Cursor::START
            && (after.major < tables.epoch || after.minor.saturating_add(1) < oldest.minor);
        if lost {
            return Err(oldest);
        }
        Ok(tables
            .log
            .iter()
            .filter(|e| e.cursor > after)
            .take(limit)
            .map(|e| (**e).clone())
            .collect())
    }

    pub(super) fn recent(&self) -> Vec<Alert> {
        let tables = self.tables.lock().expect("anomaly tables poisoned");
        tables
            .recent
            .keys()
            .rev()
            .filter_map(|(_, id)| tables.alerts.get(id).cloned())
            .collect()
    }

    pub(super) fn acknowledge(&self, id: &str, ack: Acknowledgement) -> Option<Alert> {
        let mut tables = self.tables.lock().expect("anomaly tables poisoned");
        let mut alert = tables.alerts.get(id)?.clone();
        alert.acknowledged = Some(ack);
        let entry = tables.append(Change::Acknowledged, alert.clone());
        let _ = self.feed.send(FeedItem::Entry(entry));
        Some(alert)
    }
}

impl Tables {
    fn append(&mut self, change: Change, mut alert: Alert) -> Arc<Logged> {
        // An acknowledgement outlives the episode's later changes.
        if let Some(known) = self.alerts.get(&alert.id) {
            if alert.acknowledged.is_none() {
                alert.acknowledged = known.acknowledged.clone();
            }
            self.recent.retain(|(_, id), ()| id != &alert.id);
        }
        let seq = self.next;
        self.next += 1;
        self.recent.insert((seq, alert.id.clone()), ());
        self.alerts.insert(alert.id.clone(), alert.clone());
        if self.recent.len() > RECENT_ALERTS {
            // The oldest changes go, but never an open alert.
            let excess = self.recent.len() - RECENT_ALERTS;
            let gone: Vec<(u64, String)> = self
                .recent
                .keys()
                .filter(|(_, id)| {
                    self.alerts
                        .get(id)
                        .is_none_or(|a| a.status != AlertStatus::Open)
                })
                .take(excess)
                .cloned()
                .collect();
            for key in gone {
                self.recent.remove(&key);
                self.alerts.remove(&key.1);
            }
        }
        // Cursors are this process's start (ms) and the entry's number, so a
        // cursor from before a restart is recognised as older than the log.
        let entry = Arc::new(Logged {
            cursor: Cursor {
                major: self.epoch,
                minor: seq,
            },
            change,
            alert,
        });
        self.log.push_back(Arc::clone(&entry));
        while self.log.len() > LOG_ENTRIES {
            self.log.pop_front();
        }
        entry
    }
}
