//! The write path of the Redis store: events folded per chunk into one run of
//! `apply_event.lua` each, all chunks in one pipeline, and the retry of chunks
//! refused for holding an id seen before or a fact believed wrongly (and of
//! those held back behind them).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use redis::{ErrorKind, ServerErrorKind};

use super::RedisFeatureStore;
use super::codec::{encode_entity, encode_record};
use super::keys::{BUCKETS, unix_now};
use crate::features::aggregates::{AggregateKind, MAX_COUNTER_FIELDS, MAX_GAUGES, WINDOW_COUNT};
use crate::features::batch::Folded;
use crate::features::updates::{is_fact_id, parse_fact_id};
use crate::features::{ApplyOutcome, EventUpdates, FeatureError};

type FoldHasher = foldhash::fast::RandomState;

const APPLY_EVENT_LUA: &str = include_str!("apply_event.lua");
/// Events per script run (each with the facts of its leg): large enough that
/// many share each record write, small enough that one run holds Redis for a
/// few milliseconds at most.
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
        // Every chunk is folded as if none of its events were seen before, and
        // with the facts of legs' and orders' stages this replica does not
        // believe counted (`SeenFacts`); those it believes counted go as their
        // entity and stage only, for the script to check. A chunk in
        // which the script finds an event seen, or a belief wrong, is refused
        // whole and folded again, knowing better — a second round trip only
        // when duplicates arrive or another replica applied a stage. The chunks
        // after a refused one wait for that retry too (the round's marker tells
        // them), so the call's events are applied in their order.
        let mut pending = chunks_of_events(&first, events);
        while !pending.is_empty() {
            let marker = self.keys.round_marker();
            let mut pipeline = redis::pipe();
            let mut split = Vec::with_capacity(pending.len());
            for chunk in pending {
                let (facts, own): (Vec<usize>, Vec<usize>) = chunk
                    .into_iter()
                    .partition(|&i| is_fact_id(&events[i].event_id));
                let fact_ids: Vec<&str> =
                    facts.iter().map(|&i| events[i].event_id.as_str()).collect();
                let (fresh, seen): (Vec<_>, Vec<_>) = facts
                    .into_iter()
                    .zip(self.seen_facts.believed(&fact_ids))
                    .partition(|(_, seen)| !seen);
                let sent = Chunk {
                    own,
                    fresh: fresh.into_iter().map(|(i, _)| i).collect(),
                    seen: seen.into_iter().map(|(i, _)| i).collect(),
                };
                pipeline.add_command(self.apply_command(&sent, events, &marker)?);
                split.push(sent);
            }
            let sent: usize = split.iter().map(Chunk::len).sum();
            // Applying takes Redis microseconds an event: scale the deadline.
            let deadline = self.settings.timeout * (1 + sent as u32 / 50);
            let answers = self.run_scripts(&pipeline, deadline).await?;
            let mut retry = Vec::new();
            for (chunk, answer) in split.into_iter().zip(answers) {
                let id = |i: usize| events[i].event_id.as_str();
                if answer == [0] {
                    // Deferred behind a refused chunk.
                    retry.push(chunk.all().collect());
                    continue;
                }
                if answer.is_empty() {
                    // Applied; the facts believed seen were, and were skipped.
                    self.seen_facts
                        .learn(chunk.fresh.iter().map(|&i| id(i)), []);
                    for i in chunk.seen {
                        outcomes[i] = ApplyOutcome::Duplicate;
                    }
                    continue;
                }
                // Refused: the positions, among the ids as sent, of the events
                // seen before and of the facts believed wrongly.
                let wrong: HashSet<usize, FoldHasher> =
                    answer.iter().map(|&p| p as usize - 1).collect();
                let (own, fresh) = (chunk.own.len(), chunk.fresh.len());
                let mut rest = Vec::with_capacity(chunk.len());
                let mut learned_seen = Vec::new();
                let mut learned_unseen = Vec::new();
                for (position, i) in chunk.all().enumerate() {
                    if !wrong.contains(&position) {
                        rest.push(i);
                    } else if position < own {
                        outcomes[i] = ApplyOutcome::Duplicate;
                    } else if position < own + fresh {
                        learned_seen.push(id(i));
                        rest.push(i);
                    } else {
                        learned_unseen.push(id(i));
                        rest.push(i);
                    }
                }
                self.seen_facts.learn(learned_seen, learned_unseen);
                if !rest.is_empty() {
                    rest.sort_unstable();
                    retry.push(rest);
                }
            }
            pending = retry;
        }
        Ok(outcomes)
    }

    /// The script run that applies the events of `chunk.own` and the facts of
    /// `chunk.fresh`, folded into one change per record, entity and lane set —
    /// all of them, or none if any event or fresh fact was seen before, or any
    /// fact of `chunk.seen` was not. A fact is seen when its stage's bit is in
    /// the mask stored with its leg's state.
    fn apply_command(
        &self,
        chunk: &Chunk,
        events: &[EventUpdates],
        round_marker: &str,
    ) -> Result<redis::Cmd, FeatureError> {
        let folded = Folded::of(chunk.own.iter().chain(&chunk.fresh).map(|&i| &events[i]));
        // The entities written, then the legs of facts whose state is not.
        let mut fields: Vec<String> = folded.entities.iter().map(|w| w.key.suffix()).collect();
        let mut field_at: HashMap<String, usize, FoldHasher> =
            HashMap::with_capacity_and_hasher(fields.len(), FoldHasher::default());
        for (at, field) in fields.iter().enumerate() {
            field_at.insert(field.clone(), at + 1);
        }
        let mut facts = Vec::with_capacity(chunk.fresh.len() + chunk.seen.len());
        // Per entity, the stages its facts here say are counted once applied:
        // sent with the value, so the script rewrites it only when Redis knows
        // of more.
        let mut masks = vec![0u8; fields.len()];
        for &i in chunk.fresh.iter().chain(&chunk.seen) {
            let id = &events[i].event_id;
            let (stage, entity_id) = parse_fact_id(id)
                .ok_or_else(|| FeatureError::corrupt(format!("fact id {id:?}")))?;
            let field = stage.entity(entity_id).suffix();
            let leg = match field_at.get(&field) {
                Some(&leg) => leg,
                None => {
                    fields.push(field.clone());
                    field_at.insert(field, fields.len());
                    fields.len()
                }
            };
            masks.resize(fields.len(), 0);
            masks[leg - 1] |= stage.bit();
            facts.push((leg, stage.bit()));
        }
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
            .arg(fields.len())
            .arg(folded.lanes.len())
            .arg(chunk.own.len())
            .arg(chunk.fresh.len())
            .arg(chunk.seen.len());
        for &i in &chunk.own {
            command.arg(&events[i].event_id);
        }
        for (leg, bit) in facts {
            command.arg(leg).arg(bit);
        }
        let mut bytes = Vec::with_capacity(8 * (2 + MAX_COUNTER_FIELDS + MAX_GAUGES));
        for (key, record) in &folded.records {
            encode_record(key.kind, record, &mut bytes);
            command
                .arg(key.kind.index())
                .arg(key.kind.counters().len() * WINDOW_COUNT)
                .arg(&bytes[..]);
        }
        for (at, field) in fields.iter().enumerate() {
            command.arg(field);
            match folded.entities.get(at) {
                Some(write) => {
                    encode_entity(write, masks[at], &mut bytes)?;
                    command.arg(&bytes[..]);
                }
                None => {
                    command.arg("");
                }
            }
        }
        for (_, carriers) in &folded.lanes {
            command.arg(carriers.len()).arg(carriers);
        }
        Ok(command)
    }

    /// Runs script calls in one pipeline, loading the script first if Redis
    /// forgot it; each call answers nothing when it applied its chunk, `[0]`
    /// when it was deferred, and otherwise the positions (1-based) of the ids
    /// it refused for.
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

/// One chunk's events as sent: the events themselves, the facts believed new
/// (folded in with them) and the facts believed seen (sent as bare ids), each
/// as positions in the call's run; the ids go in that order.
struct Chunk {
    own: Vec<usize>,
    fresh: Vec<usize>,
    seen: Vec<usize>,
}

impl Chunk {
    fn len(&self) -> usize {
        self.own.len() + self.fresh.len() + self.seen.len()
    }

    fn all(&self) -> impl Iterator<Item = usize> + '_ {
        self.own
            .iter()
            .chain(&self.fresh)
            .chain(&self.seen)
            .copied()
    }
}

/// The positions `run` split into chunks of [`APPLY_CHUNK`] events, each
/// event's facts (which follow it) in its chunk.
fn chunks_of_events(run: &[usize], events: &[EventUpdates]) -> Vec<Vec<usize>> {
    let mut chunks: Vec<Vec<usize>> = Vec::new();
    let mut in_chunk = APPLY_CHUNK;
    for &i in run {
        let event = !is_fact_id(&events[i].event_id);
        if event && in_chunk == APPLY_CHUNK {
            chunks.push(Vec::with_capacity(3 * APPLY_CHUNK));
            in_chunk = 0;
        }
        in_chunk += usize::from(event);
        match chunks.last_mut() {
            Some(chunk) => chunk.push(i),
            None => chunks.push(vec![i]),
        }
    }
    chunks
}
