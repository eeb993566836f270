//! The read path of the Redis store: one `MGET` of records (coalesced with
//! other small reads), or one pipeline of `MGET`, `SMEMBERS` per lane and
//! `HMGET` per live entity bucket, and the reading of its answer.

use std::time::Duration;

use super::RedisFeatureStore;
use super::coalesce::MAX_COALESCED_KEYS;
use super::codec::{entity_version, parse_entity, parse_record};
use super::keys::{BUCKETS, unix_now};
use crate::features::aggregates::{AggregateKey, AggregateRecord};
use crate::features::{Entity, FeatureError, FetchRequest, Fetched};

impl RedisFeatureStore {
    /// [`FeatureStore::fetch`](crate::features::FeatureStore::fetch): one
    /// `MGET`, coalesced with those of concurrent requests when small.
    pub(super) async fn read_records(
        &self,
        keys: &[AggregateKey],
    ) -> Result<Vec<Option<AggregateRecord>>, FeatureError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut command = redis::cmd("MGET");
        for key in keys {
            command.arg(self.keys.record(key));
        }
        let (command, reads) = (&command, &self.reads);
        let coalesce = keys.len() <= MAX_COALESCED_KEYS;
        let answer: redis::Value = self
            .run_within(
                self.read_deadline(keys.len()),
                |mut connection| async move {
                    if coalesce {
                        reads.query(command.clone()).await
                    } else {
                        command.query_async(&mut connection).await
                    }
                },
            )
            .await?;
        parse_records(keys, &strings_of(answer, keys.len())?)
    }

    /// [`FeatureStore::fetch_all`](crate::features::FeatureStore::fetch_all):
    /// records, lane sets and entities in one pipeline.
    pub(super) async fn read_all(&self, request: &FetchRequest) -> Result<Fetched, FeatureError> {
        let mut pipeline = redis::pipe();
        let records = !request.records.is_empty();
        if records {
            let command = pipeline.cmd("MGET");
            for key in &request.records {
                command.arg(self.keys.record(key));
            }
        }
        for (origin, destination) in &request.lanes {
            pipeline
                .cmd("SMEMBERS")
                .arg(self.keys.lane_carriers(origin, destination));
        }
        let entities = !request.entities.is_empty();
        if entities {
            // An entity may sit in any live bucket; the newest version wins.
            for bucket in self.keys.buckets(unix_now()).0 {
                let command = pipeline.cmd("HMGET").arg(self.keys.entities(bucket));
                for key in &request.entities {
                    command.arg(key.suffix());
                }
            }
        }
        let commands =
            usize::from(records) + request.lanes.len() + if entities { BUCKETS } else { 0 };
        if commands == 0 {
            return Ok(Fetched::default());
        }
        let pipeline = &pipeline;
        let deadline = self.read_deadline(request.records.len() + request.entities.len());
        let answers: Vec<redis::Value> = self
            .run_within(deadline, |mut connection| async move {
                pipeline.query_async(&mut connection).await
            })
            .await?;
        if answers.len() != commands {
            return Err(FeatureError::corrupt(format!(
                "{} answers for {commands} commands",
                answers.len()
            )));
        }
        let mut answers = answers.into_iter();
        let mut fetched = Fetched::default();
        if records {
            let values = strings_of(answers.next().expect("counted"), request.records.len())?;
            fetched.records = parse_records(&request.records, &values)?;
        }
        for _ in &request.lanes {
            let mut carriers: Vec<String> =
                redis::from_redis_value(answers.next().expect("counted"))
                    .map_err(|e| FeatureError::corrupt_with(e.to_string(), e))?;
            carriers.sort();
            fetched.lane_carriers.push(carriers);
        }
        if entities {
            fetched.entities = newest_entities(answers.take(BUCKETS), request.entities.len())?;
        }
        Ok(fetched)
    }

    /// The deadline of a read of `keys` records: the configured one, longer for
    /// very large reads (a 10,000-item batch reads some 60,000 records).
    fn read_deadline(&self, keys: usize) -> Duration {
        self.settings.timeout * (1 + keys as u32 / 2_000)
    }
}

/// The values of an `MGET` or `HMGET` answer for `count` keys or fields.
fn strings_of(answer: redis::Value, count: usize) -> Result<Vec<redis::Value>, FeatureError> {
    match answer {
        redis::Value::Array(values) if values.len() == count => Ok(values),
        redis::Value::Array(values) => Err(FeatureError::corrupt(format!(
            "{} answers for {count} keys",
            values.len()
        ))),
        other => Err(FeatureError::corrupt(format!("MGET answered {other:?}"))),
    }
}

/// Reads the records among an `MGET` answer's values, without copying them.
fn parse_records(
    keys: &[AggregateKey],
    values: &[redis::Value],
) -> Result<Vec<Option<AggregateRecord>>, FeatureError> {
    keys.iter()
        .zip(values)
        .map(|(key, value)| match value {
            redis::Value::Nil => Ok(None),
            redis::Value::BulkString(bytes) => parse_record(key.kind, bytes).map(Some),
            other => Err(FeatureError::corrupt(format!("record {key}: {other:?}"))),
        })
        .collect()
}

/// The newest version of each of `count` entities over the `HMGET` answers of
/// the live buckets; `None` for an entity in none of them.
fn newest_entities(
    answers: impl Iterator<Item = redis::Value>,
    count: usize,
) -> Result<Vec<Option<Entity>>, FeatureError> {
    let mut newest: Vec<Option<(f64, Vec<u8>)>> = vec![None; count];
    for answer in answers {
        for (best, value) in newest.iter_mut().zip(strings_of(answer, count)?) {
            let (version, bytes) = match value {
                redis::Value::Nil => continue,
                redis::Value::BulkString(bytes) => match entity_version(&bytes) {
                    Some(version) => (version, bytes),
                    None => {
                        let other = redis::Value::BulkString(bytes);
                        return Err(FeatureError::corrupt(format!("stored entity: {other:?}")));
                    }
                },
                other => {
                    return Err(FeatureError::corrupt(format!("stored entity: {other:?}")));
                }
            };
            if best.as_ref().is_none_or(|(v, _)| version > *v) {
                *best = Some((version, bytes));
            }
        }
    }
    newest
        .into_iter()
        .map(|best| best.map_or(Ok(None), |(_, bytes)| parse_entity(&bytes)))
        .collect()
}
