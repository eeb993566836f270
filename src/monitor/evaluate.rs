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

const HOUR: i64 = 3_600;
/// Hours a rate series keeps out of its past: its failures are tested over
/// the last 3, 12 and 24 of them ([`RATE_WINDOWS`]).
pub const WINDOW_HOURS: i64 = 24;
/// The windows a rate series is tested over, in hours: a sharp disruption
/// shows within a few hours, a milder or sparser one only over a day (legs
/// finish hours after a disruption touches them). The smallest p-value is
/// taken times the windows tried.
const RATE_WINDOWS: [i64; 3] = [3, 12, 24];
/// Empty hours a count series fills in at most when its next point comes
/// (a week; a longer silence is a gap, not a week of zeros).
const MAX_FILLED_HOURS: i64 = 168;

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
    /// [`MAX_OPEN_LEGS`]: what an alert of it puts at risk.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub open_legs: Vec<OpenLeg>,
    /// The last [`MAX_OPEN_LEGS`] listed legs reported finished: a late
    /// report of an earlier stage does not bring one back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finished_legs: Vec<String>,
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
    /// It has left.
    pub departed: bool,
}

/// Legs a carrier-region series remembers at most (the latest to leave).
const MAX_OPEN_LEGS: usize = 64;
/// Legs an alert lists at most.
const AT_RISK_LISTED: usize = 10;
/// A leg due to leave this long before the series' newest outcome and not
/// heard of since is forgotten (its end was never reported).
const FORGET_LEG_SECS: i64 = 3 * 24 * 3_600;

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

/// Hours a count series' windows span: each point is tested over the last
/// 1, 3 and 6 hours (a strong surge shows within the hour, a mild one only
/// over several), with the smallest p-value taken times the windows tried.
const COUNT_WINDOWS: [usize; 3] = [1, 3, 6];
/// Busy points a throughput series' window averages.
const THROUGHPUT_WINDOW: usize = 3;

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
            departed,
            finished,
        } = &point.value
        {
            track_leg(state, id, *departure, *departed, *finished);
            continue;
        }
        if point.value == PointValue::Tick {
            // Only an open episode is swept; a quiet series stays as it is.
            if state.episodes.open.is_none() {
                continue;
            }
            for (at, verdict) in tick(series, state, buckets, point.at) {
                let severity = verdict.severity as u8;
                if let Some(transition) =
                    state
                        .episodes
                        .step(&key, at, verdict.score, severity, &rules)
                {
                    out.push(alert(series, state, transition, at, verdict));
                }
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
            let severity = verdict.severity as u8;
            if let Some(transition) = state
                .episodes
                .step(&key, at, verdict.score, severity, &rules)
            {
                out.push(alert(series, state, transition, at, verdict));
            }
        }
    }
    out
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

/// Keeps a leg's latest state among the open legs (or drops it, finished).
fn track_leg(state: &mut SeriesState, id: &str, departure: i64, departed: bool, finished: bool) {
    if state.finished_legs.iter().any(|l| l == id) {
        return;
    }
    let was_open = state.open_legs.iter().any(|l| l.id == id);
    state.open_legs.retain(|l| l.id != id);
    if finished {
        // Only a leg that was listed needs remembering as finished.
        if !was_open {
            return;
        }
        state.finished_legs.push(id.to_string());
        if state.finished_legs.len() > MAX_OPEN_LEGS {
            state.finished_legs.remove(0);
        }
        return;
    }
    let newest = state.cells.last().map_or(i64::MIN, |c| c.0 * HOUR);
    state
        .open_legs
        .retain(|l| l.departure >= newest.saturating_sub(FORGET_LEG_SECS));
    state.open_legs.push(OpenLeg {
        id: id.to_string(),
        departure,
        departed,
    });
    if state.open_legs.len() > MAX_OPEN_LEGS {
        // The earliest to leave goes first.
        let earliest = state
            .open_legs
            .iter()
            .enumerate()
            .min_by_key(|(_, l)| l.departure)
            .map(|(i, _)| i)
            .expect("not empty");
        state.open_legs.remove(earliest);
    }
}

/// The legs an alert of `state`'s series puts at risk: those not gone
/// first (they can still be rerouted), each group by departure.
fn at_risk(state: &SeriesState) -> Vec<AtRisk> {
    let mut legs: Vec<&OpenLeg> = state.open_legs.iter().collect();
    legs.sort_by_key(|l| (l.departed, l.departure));
    legs.into_iter()
        .take(AT_RISK_LISTED)
        .map(|l| AtRisk {
            shipment_id: l.id.clone(),
            scheduled_departure: l.departure,
            departed: l.departed,
            reroute: None,
        })
        .collect()
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

/// A rate series' point: its outcome joins the window, the window is tested.
fn rate_point(state: &mut SeriesState, point: &Point) -> Option<(i64, Verdict)> {
    let settings = RateSettings::default();
    let PointValue::Outcome { failed } = point.value else {
        return None;
    };
    let hour = point.at.div_euclid(HOUR);
    let newest = slide_window(state, hour);
    if hour <= newest - WINDOW_HOURS {
        // Too old for the window: it only teaches the past.
        state
            .rate
            .learn((hour + 1) * HOUR, u64::from(failed), 1, &settings);
        return None;
    }
    match state.cells.iter_mut().find(|c| c.0 == hour) {
        Some(cell) => {
            cell.1 += u64::from(failed);
            cell.2 += 1;
        }
        None => {
            state.cells.push((hour, u64::from(failed), 1));
            state.cells.sort_by_key(|c| c.0);
        }
    }
    Some((point.at, window_verdict(state, newest)))
}

/// Moves a rate series' window to end at the later of its newest hour and
/// `hour`: hours that leave it join the past. Returns its newest hour.
fn slide_window(state: &mut SeriesState, hour: i64) -> i64 {
    let settings = RateSettings::default();
    let newest = state.cells.last().map_or(hour, |c| c.0).max(hour);
    while let Some(&(h, k, n)) = state.cells.first() {
        if h > newest - WINDOW_HOURS {
            break;
        }
        state.rate.learn((h + 1) * HOUR, k, n, &settings);
        state.cells.remove(0);
    }
    newest
}

/// A rate series' window, ending with hour `newest`, tested.
fn window_verdict(state: &SeriesState, newest: i64) -> Verdict {
    let settings = RateSettings::default();
    // The most surprising window ending with the newest hour.
    let mut best: Option<(crate::anomaly::RateScored, u64, u64, i64)> = None;
    for hours in RATE_WINDOWS {
        let (k, n) = state
            .cells
            .iter()
            .filter(|c| c.0 > newest - hours)
            .fold((0, 0), |(k, n), c| (k + c.1, n + c.2));
        let scored = if plainly_ordinary(k, n, state.rate.baseline()) {
            // Not worth an incomplete beta: its score cannot reach the
            // episodes' thresholds.
            crate::anomaly::RateScored {
                score: 0.0,
                baseline: state.rate.baseline(),
                warming_up: false,
            }
        } else {
            state.rate.score(k, n, &settings)
        };
        if best.is_none_or(|b| scored.score > b.0.score) {
            best = Some((scored, k, n, hours));
        }
    }
    let (mut scored, k, n, hours) = best.expect("windows are tried");
    scored.score = (1.0 - (1.0 - scored.score) * RATE_WINDOWS.len() as f64).max(0.0);
    let share = k as f64 / n.max(1) as f64;
    let severity = if scored.score < 0.99 {
        Severity::Low
    } else if share >= 0.5 && k >= 5 {
        Severity::Critical
    } else if share >= 3.0 * scored.baseline && k >= 5 {
        Severity::High
    } else {
        Severity::Medium
    };
    Verdict {
        score: scored.score,
        severity,
        words: Words::Rate {
            failed: k,
            finished: n,
            hours,
            since: (newest + 1 - hours) * HOUR,
            baseline: scored.baseline,
            past_legs: state.rate.trials(),
        },
    }
}

/// Whether `k` failures of `n` at a past rate `rate` are less than one
/// standard deviation above what it predicts: their binomial tail is then
/// far above anything the episodes act on (a right-skewed binomial's upper
/// tail is heavier than the normal's, so this only errs towards computing).
fn plainly_ordinary(k: u64, n: u64, rate: f64) -> bool {
    let (k, n) = (k as f64, n as f64);
    k - n * rate < (n * rate * (1.0 - rate)).sqrt()
}

/// A count series' point: it joins its hour; closing an hour learns it (and
/// any empty hours before this one) and judges it whole. The open hour is
/// judged as it fills only to raise an alarm (a partial count above the
/// usual is evidence; below it, not yet). Each judgement tests the last 1,
/// 3 and 6 hours ([`COUNT_WINDOWS`]).
fn count_point(
    state: &mut SeriesState,
    buckets: &mut LoadedBuckets,
    point: &Point,
) -> Vec<(i64, Verdict)> {
    let settings = DetectorSettings {
        direction: Direction::Up,
        ..DetectorSettings::default()
    };
    let hour = point.at.div_euclid(HOUR);
    let mut out = Vec::new();
    let open = state.cells.first().copied();
    match open {
        Some((open_hour, _, _)) if hour < open_hour => return out, // a late point of a closed hour
        Some((open_hour, _, count)) if hour > open_hour => {
            let at = open_hour * HOUR;
            let verdict = count_window(state, buckets, at, count as f64, &settings);
            close_hour(state, buckets, at, count as f64, &settings);
            out.push((at + HOUR - 1, verdict));
            for empty in (open_hour + 1..hour).take(MAX_FILLED_HOURS as usize) {
                close_hour(state, buckets, empty * HOUR, 0.0, &settings);
            }
            state.cells = vec![(hour, 0, 0)];
        }
        Some(_) => {}
        None => state.cells = vec![(hour, 0, 0)],
    }
    state.cells[0].2 += 1;
    let count = state.cells[0].2;
    let verdict = count_window(state, buckets, hour * HOUR, count as f64, &settings);
    if verdict.score >= EpisodeRules::default().calm {
        out.push((point.at, verdict));
    }
    out
}

/// Learns a closed hour's count and keeps it, with what was expected of
/// it, among the recent hours.
fn close_hour(
    state: &mut SeriesState,
    buckets: &mut LoadedBuckets,
    at: i64,
    count: f64,
    settings: &DetectorSettings,
) {
    let (mean, variance) = series::expected(buckets, at);
    let scored = series::score(buckets, &state.meta, at, count, settings);
    series::learn(buckets, &mut state.meta, at, count, &scored);
    state.recent.push(Recent {
        at,
        value: count,
        mean,
        spread: variance.max(mean),
    });
    let keep = COUNT_WINDOWS[COUNT_WINDOWS.len() - 1] - 1;
    if state.recent.len() > keep {
        state.recent.drain(..state.recent.len() - keep);
    }
}

/// The hour starting at `at` holding `count` (so far), tested over each
/// window of [`COUNT_WINDOWS`] that ends with it.
fn count_window(
    state: &SeriesState,
    buckets: &LoadedBuckets,
    at: i64,
    count: f64,
    settings: &DetectorSettings,
) -> Verdict {
    let (mean, variance) = series::expected(buckets, at);
    let warming_up = state.meta.seen < settings.min_history;
    // (p, hours, count, expected) of the most surprising window.
    let mut best = (1.0f64, 1usize, count, mean);
    let mut tried = 0;
    for hours in COUNT_WINDOWS {
        // The hours before this one, consecutive and just closed.
        let before: Vec<&Recent> = state
            .recent
            .iter()
            .rev()
            .take(hours - 1)
            .take_while(|r| r.at >= at - (hours as i64 - 1) * HOUR)
            .collect();
        if before.len() + 1 < hours {
            continue;
        }
        tried += 1;
        let total = count + before.iter().map(|r| r.value).sum::<f64>();
        let expected = mean + before.iter().map(|r| r.mean).sum::<f64>();
        let spread = variance.max(mean) + before.iter().map(|r| r.spread).sum::<f64>();
        let p = crate::anomaly::tail::negative_binomial(
            total.round() as u64,
            expected,
            spread,
            Direction::Up,
        );
        if p < best.0 {
            best = (p, hours, total, expected);
        }
    }
    let (p, hours, total, expected) = best;
    let score = if warming_up {
        0.0
    } else {
        (1.0 - p * f64::from(tried.max(1))).clamp(0.0, 1.0)
    };
    let severity = if score < 0.99 {
        Severity::Low
    } else if total >= 2.0 * expected.max(1.0) {
        Severity::High
    } else {
        Severity::Medium
    };
    Verdict {
        score,
        severity,
        words: Words::Intake {
            orders: total,
            expected,
            hours,
            start: at - (hours as i64 - 1) * HOUR,
        },
    }
}

/// A gauge series' point: judged against its hour of the week, then
/// learned. A backlog by its level (its growth over the last
/// [`GROWTH_HOURS`] is evidence in words); throughput by the point and by
/// the mean of the last [`THROUGHPUT_WINDOW`] points' residuals.
fn gauge_point(
    series: &SeriesId,
    state: &mut SeriesState,
    buckets: &mut LoadedBuckets,
    point: &Point,
    direction: Direction,
    limits: &impl SiteLimits,
) -> Option<(i64, Verdict)> {
    let PointValue::Gauge(value) = point.value else {
        return None;
    };
    let settings = DetectorSettings {
        direction,
        ..DetectorSettings::default()
    };
    match series {
        SeriesId::SiteBacklog(site) => {
            // A queue's length is a count, but not one a Poisson or negative
            // binomial describes (it carries over from hour to hour): it is
            // judged as a level, with Student's t.
            state.meta.counts = false;
            let scored = series::score(buckets, &state.meta, point.at, value, &settings);
            series::learn(buckets, &mut state.meta, point.at, value, &scored);
            state
                .recent
                .retain(|r| r.at >= point.at - GROWTH_HOURS * HOUR && r.at < point.at);
            let growth = state.recent.first().map(|r| value - r.value);
            state.recent.push(Recent {
                at: point.at,
                value,
                ..Recent::default()
            });
            let limit = limits.backlog_limit(site);
            let share = limit.map(|l| value / l);
            let severity = match share {
                _ if scored.score < 0.99 => Severity::Low,
                Some(s) if s >= 1.0 => Severity::Critical,
                Some(s) if s >= 0.8 => Severity::High,
                _ => Severity::Medium,
            };
            Some((
                point.at,
                Verdict {
                    score: scored.score,
                    severity,
                    words: Words::Backlog {
                        backlog: value,
                        expected: scored.expected,
                        spread: scored.spread,
                        growth,
                        limit,
                        at: point.at,
                    },
                },
            ))
        }
        SeriesId::SiteThroughput(_) => {
            let single = series::score(buckets, &state.meta, point.at, value, &settings);
            series::learn(buckets, &mut state.meta, point.at, value, &single);
            if single.warming_up {
                return None;
            }
            state.recent.push(Recent {
                at: point.at,
                value,
                mean: single.expected,
                spread: single.spread,
            });
            if state.recent.len() > THROUGHPUT_WINDOW {
                state.recent.remove(0);
            }
            let residuals: Vec<f64> = state
                .recent
                .iter()
                .filter(|r| r.at >= point.at - 2 * THROUGHPUT_WINDOW as i64 * HOUR)
                .map(|r| (r.value - r.mean) / r.spread.max(1e-9))
                .collect();
            let window_p = if residuals.len() == THROUGHPUT_WINDOW {
                let mean = residuals.iter().sum::<f64>() / residuals.len() as f64;
                crate::anomaly::tail::student_t(
                    mean * (residuals.len() as f64).sqrt(),
                    10.0,
                    Direction::Down,
                )
            } else {
                1.0
            };
            let score = (1.0 - 2.0 * (1.0 - single.score).min(window_p)).clamp(0.0, 1.0);
            let recent_mean =
                state.recent.iter().map(|r| r.value).sum::<f64>() / state.recent.len() as f64;
            let ratio = recent_mean / single.expected.max(1e-9);
            let severity = if score < 0.99 {
                Severity::Low
            } else if ratio <= 0.5 {
                Severity::High
            } else {
                Severity::Medium
            };
            Some((
                point.at,
                Verdict {
                    score,
                    severity,
                    words: Words::Throughput {
                        value,
                        recent_mean,
                        points: state.recent.len(),
                        expected: single.expected,
                        spread: single.spread,
                        at: point.at,
                    },
                },
            ))
        }
        _ => None,
    }
}
