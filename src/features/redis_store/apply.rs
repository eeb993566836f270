//! The write path of the Redis store: events folded per chunk into one run of
//! `apply_event.lua` each, all chunks in one pipeline, and the retry of chunks
//! refused for holding an id seen before (and of those held back behind them).

use std::collections::HashSet;
use std::time::Duration;

use redis::{ErrorKind, ServerErrorKind};

use super::RedisFeatureStore;
use super::codec::{encode_entity, encode_record};
use super::keys::{BUCKETS, unix_now};
use crate::features::aggregates::{AggregateKind, MAX_COUNTER_FIELDS, MAX_GAUGES, WINDOW_COUNT};
use crate::features::batch::Folded;
use crate::features::{ApplyOutcome, EventUpdates, FeatureError};

type FoldHasher = foldhash::fast::RandomState;

const APPLY_EVENT_LUA: &str = include_str!("apply_event.lua");
/// Events per script run: large enough that many share each record write, small
/// enough that one run holds Redis for a few milliseconds at most.
const APPLY_CHUNK: usize = 500;

/// The script that applies a chunk of events.
pub(super) fn script() -> redis::Script {
    redis::Script::new(APPLY_EVENT_LUA)
}

impl RedisFeatureStore {
    /// [`FeatureStore::apply`](crate::features::FeatureStore::apply): in chunks,
    /// in order, each event at most once by id.
    pub(super) async fn apply_events(
        &self,
        events: &[EventUpdates],
    ) -> Result<Vec<ApplyOutcome>, FeatureError> {
        let mut outcomes = vec![ApplyOutcome::Applied; events.len()];
        // An id repeated within the call counts once, as the first occurrence.
        let mut ids = HashSet::with_capacity_and_hasher(events.len(), FoldHasher::default());
        let mut first: Vec<usize> = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            if ids.insert(event.event_id.as_str()) {
                first.push(i);
            } else {
                outcomes[i] = ApplyOutcome::Duplicate;
            }
        }
        // Every chunk is folded as if none of its events were seen before; a
        // chunk that holds one that was is refused whole and folded again without
        // it — a second round trip only when duplicates arrive. The chunks after
        // a refused one wait for that retry too (the round's marker tells them),
        // so the call's events are applied in their order.
        let mut pending: Vec<Vec<usize>> = first.chunks(APPLY_CHUNK).map(<[_]>::to_vec).collect();
        while !pending.is_empty() {
            let marker = self.keys.round_marker();
            let mut pipeline = redis::pipe();
            for chunk in &pending {
                pipeline
                    .add_command(self.apply_command(chunk.iter().map(|&i| &events[i]), &marker)?);
            }
            let events_sent: usize = pending.iter().map(Vec::len).sum();
            // Applying takes Redis microseconds an event: scale the deadline.
            let deadline = self.settings.timeout * (1 + events_sent as u32 / 50);
            let answers = self.run_scripts(&pipeline, deadline).await?;
            let mut retry = Vec::new();
            for (chunk, seen) in pending.into_iter().zip(answers) {
                if seen.is_empty() {
                    continue;
                }
                if seen == [0] {
                    retry.push(chunk); // deferred behind a refused chunk
                    continue;
                }
                let mut rest = Vec::with_capacity(chunk.len());
                for (position, i) in chunk.into_iter().enumerate() {
                    if seen.contains(&(position + 1)) {
                        outcomes[i] = ApplyOutcome::Duplicate;
                    } else {
                        rest.push(i);
                    }
                }
                if !rest.is_empty() {
                    retry.push(rest);
                }
            }
            pending = retry;
        }
        Ok(outcomes)
    }

    /// The script run that applies `events` — all of them, or none if any id
    /// was seen before — folded into one change per record, entity and lane set.
    fn apply_command<'a>(
        &self,
        events: impl Iterator<Item = &'a EventUpdates> + Clone,
        round_marker: &str,
    ) -> Result<redis::Cmd, FeatureError> {
        let folded = Folded::of(events.clone());
        let ids = events.clone().count();
        let (buckets, expire_at) = self.keys.buckets(unix_now());
        let mut command = redis::cmd("EVALSHA");
        command
            .arg(self.script.get_hash())
            .arg(folded.records.len() + 2 * BUCKETS + folded.lanes.len() + 1);
        for (key, _) in &folded.records {
            command.arg(self.keys.record(key));
        }
        for bucket in buckets {
            command.arg(self.keys.entities(bucket));
        }
        for ((origin, destination), _) in &folded.lanes {
            command.arg(self.keys.lane_carriers(origin, destination));
        }
        for bucket in buckets {
            command.arg(self.keys.seen(bucket));
        }
        command.arg(round_marker);
        command
            .arg(expire_at)
            .arg(BUCKETS)
            .arg(WINDOW_COUNT)
            .arg(AggregateKind::ALL.len());
        for kind in AggregateKind::ALL {
            for window in kind.windows() {
                command.arg(window.tau_secs);
            }
            command.arg(kind.ttl_secs().unwrap_or(0));
        }
        command
            .arg(folded.records.len())
            .arg(folded.entities.len())
            .arg(folded.lanes.len())
            .arg(ids);
        for event in events {
            command.arg(&event.event_id);
        }
        let mut bytes = Vec::with_capacity(8 * (2 + MAX_COUNTER_FIELDS + MAX_GAUGES));
        for (key, record) in &folded.records {
            encode_record(key.kind, record, &mut bytes);
            command
                .arg(key.kind.index())
                .arg(key.kind.counters().len() * WINDOW_COUNT)
                .arg(&bytes[..]);
        }
        for write in &folded.entities {
            encode_entity(write, &mut bytes)?;
            command.arg(write.key.suffix()).arg(&bytes[..]);
        }
        for (_, carriers) in &folded.lanes {
            command.arg(carriers.len()).arg(carriers);
        }
        Ok(command)
    }

    /// Runs script calls in one pipeline, loading the script first if Redis
    /// forgot it; each call answers the positions of ids it found already seen.
    async fn run_scripts(
        &self,
        pipeline: &redis::Pipeline,
        deadline: Duration,
    ) -> Result<Vec<Vec<usize>>, FeatureError> {
        let script = &self.script;
        self.run_within(deadline, |mut connection| async move {
            match pipeline.query_async(&mut connection).await {
                Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    // Redis restarted and forgot the script, so no EVALSHA ran:
                    // load it and go again.
                    script.prepare_invoke().load_async(&mut connection).await?;
                    pipeline.query_async(&mut connection).await
                }
                other => other,
            }
        })
        .await
    }
}
