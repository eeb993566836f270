//! One series' points through its detector and its episodes: the pure step
//! between loading a series' state and committing it.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::series::{Point, PointValue, SeriesId, Shape};
use super::words::{self, GROWTH_HOURS, Words};
use crate::anomaly::series::{self, Bucket, Buckets, Moments, SeriesMeta};
use crate::anomaly::{
    Alert, AlertStatus, AtRisk, Change, DetectorSettings, Direction, EpisodeRules, Episodes,
    RateDetector, RateSettings, Severity, Transition,
};

mod legs;
mod rates;
mod sites;

use legs::{at_risk, overdue, reported_outcome, track_leg};
use rates::{rate_point, slide_window, window_verdict};
use sites::{MAX_FILLED_HOURS, close_hour, count_point, count_window, gauge_point};

const HOUR: i64 = 3_600;

/// What a series keeps besides its seasonal buckets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesState {
    /// The seasonal detector's points seen, value type and clock.
    #[serde(default, skip_serializing_if = "is_default")]
    pub meta: SeriesMeta,
    /// A rate series' past: outcomes that left its window.
    #[serde(default, skip_serializing_if = "is_default")]
    pub rate: RateDetector,
    /// A rate series' window (hour, failed, finished), oldest first; a
    /// count series' open hour (hour, 0, count).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cells: Vec<(i64, u64, u64)>,
    /// A site series' recent points, oldest first: a count series' closed
    /// hours, a gauge's last few values, each with what the baseline
    /// expected of it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent: Vec<Recent>,
    /// A carrier-region series' legs under way or announced, the latest
    /// [`legs::MAX_OPEN_LEGS`]: what an alert of it puts at risk.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub open_legs: Vec<OpenLeg>,
    /// The last [`legs::MAX_OPEN_LEGS`] listed legs reported finished: a late
    /// report of an earlier stage does not bring one back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finished_legs: Vec<String>,
    /// Legs counted as failed when they became overdue (at most
    /// [`legs::MAX_OVERDUE_LEGS`]), until their outcome comes: it is not
    /// counted again (and one that did not fail takes the failure back).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overdue_legs: Vec<OverdueLeg>,
    /// Its episodes.
    #[serde(default, skip_serializing_if = "is_default")]
    pub episodes: Episodes,
}

/// A leg under way or announced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenLeg {
    /// Its id.
    pub id: String,
    /// When it is due to leave (Unix s).
    pub departure: i64,
    /// When it is due to arrive (Unix s); 0 if a report did not say.
    #[serde(default)]
    pub arrival: i64,
    /// When it left (Unix s); 0 if not reported.
    #[serde(default)]
    pub left_at: i64,
    /// It has left.
    pub departed: bool,
}

/// A leg counted as failed when it became overdue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OverdueLeg {
    /// Its id.
    pub id: String,
    /// When it was counted (Unix s).
    pub at: i64,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// One recent point of a site series and what its baseline expected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Recent {
    /// Event time, Unix s.
    pub at: i64,
    /// The value (a count series: the hour's count; backlog: the backlog).
    pub value: f64,
    /// The baseline's mean for it.
    pub mean: f64,
    /// The baseline's variance (counts) or spread (other values) for it.
    pub spread: f64,
}

/// The seasonal buckets a store loaded for a series, and those it changed
/// or lacked.
#[derive(Debug, Default)]
pub struct LoadedBuckets {
    loaded: HashMap<Bucket, Moments>,
    dirty: BTreeSet<Bucket>,
    missing: RefCell<BTreeSet<Bucket>>,
}

impl LoadedBuckets {
    /// Buckets as loaded: each one asked for, with its moments if stored.
    pub fn new(loaded: impl IntoIterator<Item = (Bucket, Option<Moments>)>) -> Self {
        LoadedBuckets {
            loaded: loaded
                .into_iter()
                .map(|(b, m)| (b, m.unwrap_or_default()))
                .collect(),
            ..LoadedBuckets::default()
        }
    }

    /// Buckets read that were not loaded: load them and run again.
    pub fn missing(&self) -> BTreeSet<Bucket> {
        self.missing.borrow().clone()
    }

    /// Buckets changed, with their moments, to be written.
    pub fn dirty(&self) -> impl Iterator<Item = (Bucket, Moments)> + '_ {
        self.dirty.iter().map(|b| (*b, self.loaded[b]))
    }
}

impl Buckets for LoadedBuckets {
    fn get(&self, bucket: Bucket) -> Moments {
        match self.loaded.get(&bucket) {
            Some(moments) => *moments,
            None => {
                self.missing.borrow_mut().insert(bucket);
                Moments::default()
            }
        }
    }

    fn put(&mut self, bucket: Bucket, moments: Moments) {
        self.loaded.insert(bucket, moments);
        self.dirty.insert(bucket);
    }
}

/// The buckets a series' points will read, as far as is known before its
/// state is loaded (a count series closing an older hour asks for more).
pub fn buckets_for(series: &SeriesId, points: &[Point]) -> BTreeSet<Bucket> {
    let mut out = BTreeSet::new();
    match series.shape() {
        Shape::Rate => {}
        Shape::Gauge(_) => {
            for p in points {
                out.extend(Bucket::of(p.at));
            }
        }
        Shape::HourlyCount => {
            for p in points {
                let hour = p.at.div_euclid(HOUR) * HOUR;
                out.extend(Bucket::of(hour));
                out.extend(Bucket::of(hour - HOUR));
            }
        }
    }
    out
}

/// What the service knows of a site that a summary or a severity needs.
pub trait SiteLimits {
    /// The site's backlog limit, if the network lists it.
    fn backlog_limit(&self, site: &str) -> Option<f64>;
}

impl SiteLimits for crate::network::Network {
    fn backlog_limit(&self, site: &str) -> Option<f64> {
        self.site(site)
            .map(|s| s.backlog_limit)
            .filter(|l| *l > 0.0)
    }
}

/// One point's verdict: its score and severity, and the figures its words
/// are made of (rendered only if it changes an alert).
struct Verdict {
    score: f64,
    severity: Severity,
    words: Words,
}

/// Runs `points` (in time order) through `series`' detector and episodes.
/// Returns the alert changes to publish, in order.
pub fn advance(
    series: &SeriesId,
    state: &mut SeriesState,
    buckets: &mut LoadedBuckets,
    points: &[Point],
    limits: &impl SiteLimits,
) -> Vec<(Change, Alert)> {
    let rules = EpisodeRules::default();
    let key = series.key();
    let mut out = Vec::new();
    for point in points {
        if let PointValue::Leg {
            id,
            departure,
            arrival,
            left_at,
            departed,
            finished,
        } = &point.value
        {
            track_leg(
                state, id, *departure, *arrival, *left_at, *departed, *finished,
            );
            continue;
        }
        // A leg not arrived a grace after it was due has failed, whether
        // or not its report has come: counted now, when it is known.
        if series.shape() == Shape::Rate {
            for due in overdue(state, point.at) {
                let failed = Point {
                    at: due,
                    value: PointValue::Outcome {
                        failed: true,
                        leg: None,
                    },
                };
                if let Some((at, verdict)) = rate_point(state, &failed) {
                    out.extend(step(series, &key, state, &rules, at, verdict));
                }
            }
        }
        if let PointValue::Outcome {
            failed,
            leg: Some(leg),
        } = &point.value
            && reported_outcome(state, leg, *failed)
        {
            // Counted when it became overdue.
            continue;
        }
        if point.value == PointValue::Due {
            // Its overdue legs are counted; nothing else is judged.
            continue;
        }
        if point.value == PointValue::Tick {
            // Only an open episode is swept; a quiet series stays as it is.
            if state.episodes.open.is_none() {
                continue;
            }
            for (at, verdict) in tick(series, state, buckets, point.at) {
                out.extend(step(series, &key, state, &rules, at, verdict));
            }
            continue;
        }
        let verdicts = match series.shape() {
            Shape::Rate => rate_point(state, point).into_iter().collect(),
            Shape::HourlyCount => count_point(state, buckets, point),
            Shape::Gauge(direction) => {
                gauge_point(series, state, buckets, point, direction, limits)
                    .into_iter()
                    .collect::<Vec<_>>()
            }
        };
        for (at, verdict) in verdicts {
            out.extend(step(series, &key, state, &rules, at, verdict));
        }
    }
    out
}

/// One verdict through the series' episodes: the alert change it makes,
/// if any.
fn step(
    series: &SeriesId,
    key: &str,
    state: &mut SeriesState,
    rules: &EpisodeRules,
    at: i64,
    verdict: Verdict,
) -> Option<(Change, Alert)> {
    let severity = verdict.severity as u8;
    let transition = state
        .episodes
        .step(key, at, verdict.score, severity, rules)?;
    Some(alert(series, state, transition, at, verdict))
}

/// A series whose points stopped, judged at `at` (the ingest clock): a rate
/// series' window moves on without them, a count series' hours close empty,
/// and a gauge without values counts as ordinary — so an episode whose
/// evidence stopped coming ends.
fn tick(
    series: &SeriesId,
    state: &mut SeriesState,
    buckets: &mut LoadedBuckets,
    at: i64,
) -> Vec<(i64, Verdict)> {
    let hour = at.div_euclid(HOUR);
    match series.shape() {
        Shape::Rate => {
            let newest = slide_window(state, hour);
            vec![(at, window_verdict(state, newest))]
        }
        Shape::HourlyCount => {
            let settings = DetectorSettings {
                direction: Direction::Up,
                ..DetectorSettings::default()
            };
            match state.cells.first().copied() {
                Some((open_hour, _, count)) if hour > open_hour => {
                    let start = open_hour * HOUR;
                    let verdict = count_window(state, buckets, start, count as f64, &settings);
                    close_hour(state, buckets, start, count as f64, &settings);
                    for empty in (open_hour + 1..hour).take(MAX_FILLED_HOURS as usize) {
                        close_hour(state, buckets, empty * HOUR, 0.0, &settings);
                    }
                    state.cells = vec![(hour, 0, 0)];
                    vec![(at, verdict)]
                }
                _ => Vec::new(),
            }
        }
        Shape::Gauge(_) => vec![(
            at,
            Verdict {
                score: 0.0,
                severity: Severity::Low,
                words: Words::Quiet {
                    last: state.meta.latest,
                },
            },
        )],
    }
}

fn alert(
    series: &SeriesId,
    state: &mut SeriesState,
    transition: Transition,
    at: i64,
    verdict: Verdict,
) -> (Change, Alert) {
    let open = match transition {
        Transition::Resolved => state.episodes.close(),
        _ => state.episodes.open.clone(),
    }
    .expect("a transition has its episode");
    let (change, status, resolved_at) = match transition {
        Transition::Opened => (Change::Opened, AlertStatus::Open, None),
        Transition::Updated => (Change::Updated, AlertStatus::Open, None),
        Transition::Resolved => (Change::Resolved, AlertStatus::Resolved, Some(at)),
    };
    let (mut summary, evidence) = verdict.words.render(series);
    if open.recurrence > 0 {
        summary.push_str(&format!(
            " Recurring: the {} {} at this time of the week ({}) in five weeks.",
            words::ordinal(open.recurrence + 1),
            series.kind().phrase(),
            words::time_of_week(open.opened_at),
        ));
    }
    let alert = Alert {
        id: open.id.clone(),
        kind: series.kind(),
        severity: match transition {
            // The episode's worst, kept in its last word.
            Transition::Resolved => Severity::ALL[usize::from(open.worst)],
            _ => verdict.severity,
        },
        worst_severity: Severity::ALL[usize::from(open.worst)].max(verdict.severity),
        status,
        score: verdict.score,
        peak_score: open.peak.max(verdict.score),
        first_seen: open.opened_at,
        last_updated: at,
        resolved_at,
        series: series.key(),
        entities: series.entities(),
        summary,
        evidence,
        recurrence: open.recurrence,
        action: words::action(series),
        at_risk: match (series, transition) {
            (SeriesId::CarrierRegion(..), Transition::Opened | Transition::Updated) => {
                at_risk(state)
            }
            _ => Vec::new(),
        },
        acknowledged: None,
    };
    (change, alert)
}
