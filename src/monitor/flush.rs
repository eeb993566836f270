//! The monitor's write path: the flusher that runs queued points through
//! their series' detectors and commits them (group commit), the suggestions
//! for an alert's legs at risk, and the sweep of quiet series.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::series::{self, Point, SeriesId};
use super::store::{Commit, LoadRequest, Loaded};
use super::{
    FLUSH_GAP, MAX_PENDING_POINTS, Monitor, Observed, QUIET_SECS, ROUNDS, SUGGESTED_LEGS,
    SWEEP_EVERY, evaluate, signal,
};
use crate::anomaly::{AlertStatus, Bucket};
use crate::features::FeatureError;

impl Monitor {
    /// Starts the flusher: it runs the queued points whenever some arrive
    /// (call within a Tokio runtime, once).
    pub fn start(self: &Arc<Self>) {
        let sweeper = Arc::clone(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SWEEP_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if let Err(error) = sweeper.sweep().await {
                    tracing::warn!(%error, "quiet anomaly series not swept");
                }
            }
        });
        let monitor = Arc::clone(self);
        tokio::spawn(async move {
            let mut last = tokio::time::Instant::now() - FLUSH_GAP;
            loop {
                monitor.wake.notified().await;
                // Under load, let the calls of a few milliseconds gather:
                // each series is then written once for all of them.
                tokio::time::sleep_until(last + FLUSH_GAP).await;
                last = tokio::time::Instant::now();
                if let Err(error) = monitor.flush().await {
                    tracing::warn!(%error, "anomaly series not updated; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                    monitor.wake.notify_one();
                }
            }
        });
    }

    /// Queues a tick, at the ingest clock, for every open alert whose last
    /// point is more than [`QUIET_SECS`] behind it, and for every
    /// carrier-region series with a leg that came due (left, and not
    /// arrived [`OVERDUE_AFTER_SECS`](super::OVERDUE_AFTER_SECS) after it was due), and wakes the
    /// flusher: an episode whose evidence stopped coming ends instead of
    /// staying open, and an overdue leg counts as failed now rather than
    /// when its arrival is reported. Returns the series ticked.
    pub async fn sweep(&self) -> Result<usize, FeatureError> {
        let now = self.clock.load(std::sync::atomic::Ordering::Relaxed);
        if now == i64::MIN {
            return Ok(0);
        }
        let quiet: BTreeSet<SeriesId> = self
            .store
            .recent()
            .await?
            .into_iter()
            .filter(|a| a.status == AlertStatus::Open && a.last_updated < now - QUIET_SECS)
            .filter_map(|a| SeriesId::parse(&a.series))
            .collect();
        let mut due_now = BTreeSet::new();
        {
            let mut due = self.due.lock().expect("due legs poisoned");
            while due.peek().is_some_and(|d| d.0.0 <= now) {
                let std::cmp::Reverse((_, series)) = due.pop().expect("peeked");
                due_now.insert(series);
            }
        }
        let ticked = quiet.union(&due_now).count();
        if ticked > 0 {
            let mut pending = self.pending.lock().expect("pending points poisoned");
            let ticks = quiet.into_iter().map(|id| (id, series::PointValue::Tick));
            let dues = due_now.into_iter().map(|id| (id, series::PointValue::Due));
            for (id, value) in ticks.chain(dues) {
                pending.points += 1;
                pending
                    .series
                    .entry(id)
                    .or_default()
                    .push(Point { at: now, value });
            }
            drop(pending);
            self.wake.notify_one();
        }
        Ok(ticked)
    }

    /// Runs every queued point now, and returns when they are committed
    /// (with a flush already under way, after it). On a store error the
    /// points go back to the queue.
    pub async fn flush(&self) -> Result<Observed, FeatureError> {
        let _one_at_a_time = self.flushing.lock().await;
        let (batch, dropped) = {
            let mut pending = self.pending.lock().expect("pending points poisoned");
            pending.points = 0;
            (
                std::mem::take(&mut pending.series),
                std::mem::take(&mut pending.dropped),
            )
        };
        if dropped > 0 {
            tracing::warn!(
                points = dropped,
                "anomaly points dropped: the queue was full"
            );
        }
        let mut batch: Vec<(SeriesId, Vec<Point>)> = batch.into_iter().collect();
        for (_, points) in &mut batch {
            points.sort_by_key(|p| p.at);
        }
        let mut retry = vec![true; batch.len()];
        let result = self.run_points(&batch, &mut retry).await;
        if result.is_err() {
            // Back to the queue go only the series none of whose points can
            // have been committed: a series a commit may have written (its
            // answer lost) is not run twice — its points are dropped, counted.
            let mut pending = self.pending.lock().expect("pending points poisoned");
            for ((id, mut points), retry) in batch.into_iter().zip(retry) {
                if retry && pending.points + points.len() <= MAX_PENDING_POINTS {
                    pending.points += points.len();
                    let queued = pending.series.entry(id).or_default();
                    points.append(queued);
                    *queued = points;
                } else {
                    pending.dropped += points.len() as u64;
                }
            }
        }
        result
    }

    /// Runs series' points (each series' in time order) through their
    /// detectors and commits them, with their alert changes.
    /// On an error, `retry[i]` says whether `batch[i]` may run again
    /// (nothing of it committed): false once a commit that held it was sent.
    async fn run_points(
        &self,
        batch: &[(SeriesId, Vec<Point>)],
        retry: &mut [bool],
    ) -> Result<Observed, FeatureError> {
        let mut pending: Vec<(usize, &SeriesId, &[Point], BTreeSet<Bucket>)> = batch
            .iter()
            .enumerate()
            .map(|(i, (id, points))| (i, id, points.as_slice(), evaluate::buckets_for(id, points)))
            .collect();
        let mut observed = Observed {
            points: pending.iter().map(|p| p.2.len()).sum(),
            ..Observed::default()
        };
        for _ in 0..ROUNDS {
            if pending.is_empty() {
                break;
            }
            let requests: Vec<LoadRequest> = pending
                .iter()
                .map(|(_, id, _, buckets)| LoadRequest {
                    key: id.key(),
                    buckets: buckets.iter().copied().collect(),
                })
                .collect();
            let loaded = self.store.load(&requests).await?;
            let mut ready = Vec::new();
            let mut commits = Vec::new();
            let mut again = Vec::new();
            for (entry, loaded) in pending.into_iter().zip(loaded) {
                match self.run_series(entry.1, entry.2, loaded) {
                    Ok(commit) => {
                        commits.push(commit);
                        ready.push(entry);
                    }
                    Err(missing) => {
                        let mut entry = entry;
                        entry.3.extend(missing);
                        again.push(entry);
                    }
                }
            }
            self.suggest_reroutes(&mut commits).await;
            let alerts: Vec<usize> = commits.iter().map(|c| c.alerts.len()).collect();
            let mut signals: Vec<Vec<crate::features::EventUpdates>> = commits
                .iter()
                .map(|c| {
                    c.alerts
                        .iter()
                        .filter_map(|(change, alert)| signal::disruption_event(*change, alert))
                        .collect()
                })
                .collect();
            for entry in &ready {
                retry[entry.0] = false;
            }
            let written = self.store.commit(commits).await?;
            let mut disruptions = Vec::new();
            for (((entry, ok), alerts), signals) in
                ready.into_iter().zip(written).zip(alerts).zip(&mut signals)
            {
                if ok {
                    disruptions.append(signals);
                    observed.series += 1;
                    observed.alerts += alerts;
                } else {
                    // Refused: nothing of it was written.
                    retry[entry.0] = true;
                    again.push(entry);
                }
            }
            self.signal(disruptions).await;
            pending = again;
        }
        observed.dropped = pending.len();
        if observed.dropped > 0 {
            tracing::warn!(
                series = observed.dropped,
                "anomaly series not updated: other replicas kept writing them"
            );
        }
        Ok(observed)
    }

    /// Writes committed alert changes to their disruption records, if a
    /// signal is set. A failure is logged, not returned: the alerts are
    /// committed, and an open alert's record is written again with its next
    /// change.
    async fn signal(&self, events: Vec<crate::features::EventUpdates>) {
        let Some(signal) = self.signal.get() else {
            return;
        };
        if events.is_empty() {
            return;
        }
        let count = events.len();
        if let Err(error) = signal(events).await {
            tracing::warn!(%error, changes = count, "open alerts not written as model inputs");
        }
    }

    /// Gives the first at-risk legs of each alert that have not left their
    /// top reroute, if a suggester is set.
    async fn suggest_reroutes(&self, commits: &mut [Commit]) {
        let Some(suggest) = self.suggest.get() else {
            return;
        };
        for commit in commits {
            for (_, alert) in &mut commit.alerts {
                let waiting = alert.at_risk.iter_mut().filter(|l| !l.departed);
                for leg in waiting.take(SUGGESTED_LEGS) {
                    leg.reroute = suggest(leg.shipment_id.clone()).await;
                }
            }
        }
    }

    /// One series' points on its loaded state: the commit, or the buckets
    /// its points need that were not loaded.
    fn run_series(
        &self,
        id: &SeriesId,
        points: &[Point],
        loaded: Loaded,
    ) -> Result<Commit, BTreeSet<Bucket>> {
        let mut state = loaded.state.unwrap_or_default();
        let mut buckets = evaluate::LoadedBuckets::new(loaded.buckets);
        let alerts = evaluate::advance(id, &mut state, &mut buckets, points, &*self.network);
        let missing = buckets.missing();
        if !missing.is_empty() {
            return Err(missing);
        }
        Ok(Commit {
            key: id.key(),
            expected: loaded.version,
            state,
            buckets: buckets.dirty().collect(),
            alerts,
        })
    }
}
