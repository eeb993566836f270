//! The alert log in Redis: entries after a cursor, the alerts listed, an
//! acknowledgement, and the reader that hands new entries to this
//! replica's subscribers.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use super::{RedisAnomalies, now_ms, unavailable};
use crate::anomaly::{Acknowledgement, Alert};
use crate::features::FeatureError;
use crate::monitor::feed::{Cursor, FeedItem, Logged, StoredEntry};

/// Stream entries as `XRANGE` answers them: id, then field-value pairs.
type Entries = Vec<(String, Vec<(String, String)>)>;

fn parse_id(id: &str) -> Result<Cursor, FeatureError> {
    Cursor::parse(id).ok_or_else(|| FeatureError::corrupt(format!("stream id {id:?}")))
}

fn decode_entry(id: &str, fields: &[(String, String)]) -> Result<Logged, FeatureError> {
    let cursor = parse_id(id)?;
    let text = fields
        .iter()
        .find(|(name, _)| name == "e")
        .map(|(_, value)| value)
        .ok_or_else(|| FeatureError::corrupt(format!("log entry {id} has no field e")))?;
    let entry: StoredEntry = serde_json::from_str(text)
        .map_err(|e| FeatureError::corrupt_with(format!("log entry {id}: {e}"), e))?;
    Ok(Logged {
        cursor,
        change: entry.change,
        alert: entry.alert,
    })
}

impl RedisAnomalies {
    pub(in crate::monitor) async fn since(
        &self,
        after: Cursor,
        limit: usize,
    ) -> Result<Result<Vec<Logged>, Cursor>, FeatureError> {
        let mut connection = self.connection.clone();
        let log = self.key("log");
        let (first, entries): (Entries, Entries) = self
            .run(async {
                redis::pipe()
                    .cmd("XRANGE")
                    .arg(&log)
                    .arg("-")
                    .arg("+")
                    .arg("COUNT")
                    .arg(1)
                    .cmd("XRANGE")
                    .arg(&log)
                    .arg(format!("({after}"))
                    .arg("+")
                    .arg("COUNT")
                    .arg(limit)
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        // The log is trimmed from its head: a cursor before the oldest entry
        // kept has lost its place (what came after it may be gone).
        if after != Cursor::START
            && let Some((oldest, _)) = first.first()
            && parse_id(oldest)? > after
        {
            return Ok(Err(parse_id(oldest)?));
        }
        entries
            .into_iter()
            .map(|(id, fields)| decode_entry(&id, &fields))
            .collect::<Result<Vec<_>, _>>()
            .map(Ok)
    }

    pub(in crate::monitor) async fn recent(
        &self,
        limit: usize,
    ) -> Result<Vec<Alert>, FeatureError> {
        let mut connection = self.connection.clone();
        let (recent, open): (Vec<String>, Vec<String>) = self
            .run(
                redis::pipe()
                    .cmd("ZREVRANGE")
                    .arg(self.key("recent"))
                    .arg(0)
                    .arg(limit.saturating_sub(1))
                    .cmd("SMEMBERS")
                    .arg(self.key("open"))
                    .query_async(&mut connection),
            )
            .await?;
        // Open alerts are listed even when older than the recent window.
        let listed: std::collections::HashSet<&String> = recent.iter().collect();
        let older_open: Vec<String> = open.into_iter().filter(|id| !listed.contains(id)).collect();
        let ids: Vec<String> = recent.iter().cloned().chain(older_open).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let (alerts, acks): (Vec<Option<String>>, Vec<Option<String>>) = self
            .run(
                redis::pipe()
                    .cmd("HMGET")
                    .arg(self.key("alerts"))
                    .arg(&ids)
                    .cmd("HMGET")
                    .arg(self.key("acks"))
                    .arg(&ids)
                    .query_async(&mut connection),
            )
            .await?;
        let mut out = Vec::with_capacity(ids.len());
        for (alert, ack) in alerts.into_iter().zip(acks) {
            let Some(alert) = alert else { continue };
            let mut alert: Alert = serde_json::from_str(&alert)
                .map_err(|e| FeatureError::corrupt_with(format!("stored alert: {e}"), e))?;
            if let Some(ack) = ack {
                alert.acknowledged = serde_json::from_str(&ack).ok();
            }
            out.push(alert);
        }
        Ok(out)
    }

    pub(in crate::monitor) async fn acknowledge(
        &self,
        id: &str,
        ack: &Acknowledgement,
    ) -> Result<Option<Alert>, FeatureError> {
        let json =
            serde_json::to_string(ack).map_err(|e| FeatureError::corrupt_with("ack as JSON", e))?;
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("EVALSHA")
            .arg(self.acknowledge.get_hash())
            .arg(4)
            .arg(self.key("alerts"))
            .arg(self.key("acks"))
            .arg(self.key("log"))
            .arg(self.key("recent"))
            .arg(id)
            .arg(json)
            .arg(now_ms());
        let (answer,): (Option<String>,) = self.run_scripts(&pipeline, &self.acknowledge).await?;
        answer
            .map(|text| {
                serde_json::from_str(&text)
                    .map_err(|e| FeatureError::corrupt_with(format!("stored alert: {e}"), e))
            })
            .transpose()
    }

    /// Reads the log as it grows and hands each entry to `feed`, from the
    /// entry after the newest at start; on a Redis failure, tells the
    /// subscribers and tries again. Runs until the process ends.
    pub fn spawn_reader(&self, feed: broadcast::Sender<FeedItem>) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut last: Option<String> = None;
            let mut connection: Option<redis::aio::MultiplexedConnection> = None;
            let log = this.key("log");
            loop {
                let result = this
                    .read_once(&mut connection, &log, &mut last, &feed)
                    .await;
                if let Err(error) = result {
                    connection = None;
                    tracing::warn!(%error, "alert log unreadable; subscribers told to resume");
                    let _ = feed.send(FeedItem::Interrupted(error.to_string()));
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        });
    }

    async fn read_once(
        &self,
        connection: &mut Option<redis::aio::MultiplexedConnection>,
        log: &str,
        last: &mut Option<String>,
        feed: &broadcast::Sender<FeedItem>,
    ) -> Result<(), FeatureError> {
        const BLOCK_MS: u64 = 1_000;
        if connection.is_none() {
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(self.timeout))
                .set_response_timeout(Some(Duration::from_millis(BLOCK_MS) + self.timeout));
            let c = tokio::time::timeout(
                self.timeout,
                self.client
                    .get_multiplexed_async_connection_with_config(&config),
            )
            .await
            .map_err(|_| FeatureError::Timeout(self.timeout.as_millis() as u64))?
            .map_err(unavailable)?;
            *connection = Some(c);
        }
        let c = connection.as_mut().expect("connected above");
        if last.is_none() {
            let newest: Entries = redis::cmd("XREVRANGE")
                .arg(log)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query_async(c)
                .await
                .map_err(unavailable)?;
            *last = Some(
                newest
                    .first()
                    .map_or("0-0".to_string(), |(id, _)| id.clone()),
            );
        }
        let from = last.clone().expect("set above");
        let answer: Option<Vec<(String, Entries)>> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(512)
            .arg("BLOCK")
            .arg(BLOCK_MS)
            .arg("STREAMS")
            .arg(log)
            .arg(&from)
            .query_async(c)
            .await
            .map_err(unavailable)?;
        for (_, entries) in answer.unwrap_or_default() {
            for (id, fields) in entries {
                match decode_entry(&id, &fields) {
                    Ok(entry) => {
                        let _ = feed.send(FeedItem::Entry(Arc::new(entry)));
                    }
                    Err(error) => {
                        tracing::warn!(%error, %id, "alert log entry unreadable; skipped")
                    }
                }
                *last = Some(id);
            }
        }
        Ok(())
    }
}
