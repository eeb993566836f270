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
use crate::features::updates::is_fact_id;
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
        // so the call's events are applied in their order. The facts of legs'
        // stages never refuse a chunk, since a leg's later reports all carry its
        // earlier stages: the chunk carries its changes folded with every fact
        // and, apart, the events folded and each fact's own changes, and the
        // script takes the second way, skipping the facts seen, when it must.
        let mut pending: Vec<Vec<usize>> = first.chunks(APPLY_CHUNK).map(<[_]>::to_vec).collect();
        while !pending.is_empty() {
            let marker = self.keys.round_marker();
            let mut pipeline = redis::pipe();
            let mut split = Vec::with_capacity(pending.len());
            for chunk in pending {
                let (facts, own): (Vec<usize>, Vec<usize>) = chunk
                    .into_iter()
                    .partition(|&i| is_fact_id(&events[i].event_id));
                pipeline.add_command(self.apply_command(&own, &facts, events, &marker)?);
                split.push((own, facts));
            }
            let sent: usize = split.iter().map(|(o, f)| o.len() + f.len()).sum();
            // Applying takes Redis microseconds an event: scale the deadline.
            let deadline = self.settings.timeout * (1 + sent as u32 / 50);
            let answers = self.run_scripts(&pipeline, deadline).await?;
            let mut retry = Vec::new();
            for ((own, facts), answer) in split.into_iter().zip(answers) {
                if answer == [0] {
                    // Deferred behind a refused chunk.
                    retry.push(own.into_iter().chain(facts).collect());
                    continue;
                }
                if answer.iter().all(|&p| p < 0) {
                    // Applied; the facts named were seen before and skipped.
                    for position in answer {
                        outcomes[facts[(-position - 1) as usize]] = ApplyOutcome::Duplicate;
                    }
                    continue;
                }
                let mut rest = Vec::with_capacity(own.len() + facts.len());
                for (position, i) in own.into_iter().enumerate() {
                    if answer.contains(&(position as i64 + 1)) {
                        outcomes[i] = ApplyOutcome::Duplicate;
                    } else {
                        rest.push(i);
                    }
                }
                rest.extend(facts);
                if !rest.is_empty() {
                    rest.sort_unstable();
                    retry.push(rest);
                }
            }
            pending = retry;
        }
        Ok(outcomes)
    }

    /// The script run that applies the events at `own` — all of them, or none
    /// if any id was seen before — folded into one change per record, entity
    /// and lane set, and the facts at `facts`, each with its own changes,
    /// skipped where seen before.
    fn apply_command(
        &self,
        own: &[usize],
        facts: &[usize],
        events: &[EventUpdates],
        round_marker: &str,
    ) -> Result<redis::Cmd, FeatureError> {
        // The quick way: everything folded, for when no fact was seen before.
        let all = Folded::of(own.iter().chain(facts).map(|&i| &events[i]));
        // The careful way: the events folded, then each fact on its own.
        let folded = Folded::of(own.iter().map(|&i| &events[i]));
        let fact_records: Vec<(usize, Folded<'_>)> = facts
            .iter()
            .enumerate()
            .map(|(f, &i)| (f + 1, Folded::of([&events[i]])))
            .collect();
        let careful = if facts.is_empty() {
            &[][..]
        } else {
            &folded.records[..]
        };
        let records = all
            .records
            .iter()
            .map(|r| (0, r))
            .chain(careful.iter().map(|r| (0, r)))
            .chain(
                fact_records
                    .iter()
                    .flat_map(|(f, folded)| folded.records.iter().map(move |r| (*f, r))),
            );
        let quick = all.records.len();
        let record_count = records.clone().count();
        let (buckets, expire_at) = self.keys.buckets(unix_now());
        let mut command = redis::cmd("EVALSHA");
        command
            .arg(self.script.get_hash())
            .arg(record_count + 2 * BUCKETS + folded.lanes.len() + 1);
        for (_, (key, _)) in records.clone() {
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
            .arg(record_count)
            .arg(folded.entities.len())
            .arg(folded.lanes.len())
            .arg(own.len())
            .arg(facts.len())
            .arg(quick);
        for &i in own.iter().chain(facts) {
            command.arg(&events[i].event_id);
        }
        let mut bytes = Vec::with_capacity(8 * (2 + MAX_COUNTER_FIELDS + MAX_GAUGES));
        for (fact, (key, record)) in records {
            encode_record(key.kind, record, &mut bytes);
            command
                .arg(key.kind.index())
                .arg(key.kind.counters().len() * WINDOW_COUNT)
                .arg(fact)
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
    /// forgot it; each call answers the positions of ids it found already seen
    /// (events refused: positive; facts skipped: negative).
    async fn run_scripts(
        &self,
        pipeline: &redis::Pipeline,
        deadline: Duration,
    ) -> Result<Vec<Vec<i64>>, FeatureError> {
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
