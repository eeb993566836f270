//! A streaming detector for one time series: each point is scored from the
//! past alone, then folded into the baseline, in O(1) time and a fixed few
//! kilobytes of state.
//!
//! The baseline is a hierarchy of time-decayed moments (mean and mean square):
//! the whole series (time constant a week), each hour of the day (three
//! weeks) and each hour of the week (eight weeks). The expectation for a time
//! is its hour-of-week moments, shrunk towards its hour of day, shrunk towards
//! the whole, each by a few pseudo-observations — so a new series leans on its
//! overall level, and daily and weekly seasonality take over as they are seen.
//!
//! A point's p-value is a tail probability under that expectation: for a
//! series of counts (non-negative integers, so far), a negative binomial with
//! the bucket's mean and variance (a Poisson when they do not vary more than
//! one); for other values, Student's t with 5 degrees of freedom on the
//! standardised residual. The score is 1 − p: a threshold of 0.999 means about
//! one false alert per thousand ordinary points, on every series alike.
//!
//! A point far out of line enters the baseline clipped to 4 standard
//! deviations, so one spike does not make the next spike look ordinary; a
//! lasting change of level is learned over the time constants.

use serde::{Deserialize, Serialize};

use super::tail::{self, Direction};

/// Hours in a week: the finest seasonal bucket.
pub const WEEK_BUCKETS: usize = 168;
/// Hours in a day.
pub const DAY_BUCKETS: usize = 24;

const HOUR: f64 = 3600.0;
const DAY: f64 = 24.0 * HOUR;
const ALL_TIME_CONSTANT: f64 = 7.0 * DAY;
const DAY_TIME_CONSTANT: f64 = 21.0 * DAY;
const WEEK_TIME_CONSTANT: f64 = 56.0 * DAY;
/// Pseudo-observations with which a finer bucket leans on the coarser one.
const SHRINK: f64 = 3.0;
/// Degrees of freedom of the residuals' t distribution.
const T_DOF: f64 = 5.0;
/// Beyond this many standard deviations a value enters the baseline clipped.
const CLIP_SIGMAS: f64 = 4.0;

/// How a detector scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorSettings {
    /// Which departures count.
    pub direction: Direction,
    /// Points seen before any is scored (they only teach the baseline).
    pub min_history: u64,
}

impl Default for DetectorSettings {
    fn default() -> Self {
        DetectorSettings {
            direction: Direction::Both,
            min_history: 48,
        }
    }
}

/// The alert threshold of the score by default: about one false alert per
/// thousand ordinary points.
pub const DEFAULT_THRESHOLD: f64 = 0.999;

/// Time-decayed moments of the values seen in one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    weight: f64,
    mean: f64,
    square: f64,
    at: i64,
}

impl Moments {
    fn update(&mut self, at: i64, value: f64, time_constant: f64) {
        let elapsed = (at - self.at).max(0) as f64;
        let weight = self.weight * (-elapsed / time_constant).exp() + 1.0;
        let step = 1.0 / weight;
        self.mean += step * (value - self.mean);
        self.square += step * (value * value - self.square);
        self.weight = weight;
        self.at = at;
    }

    fn variance(&self) -> f64 {
        (self.square - self.mean * self.mean).max(0.0)
    }

    /// `self` shrunk towards `(mean, variance)` by [`SHRINK`] pseudo-points.
    fn shrunk(&self, towards: (f64, f64)) -> (f64, f64) {
        let w = self.weight;
        (
            (w * self.mean + SHRINK * towards.0) / (w + SHRINK),
            (w * self.variance() + SHRINK * towards.1) / (w + SHRINK),
        )
    }

    /// The moments as short text (`weight mean square at`), for a store.
    pub fn encode(&self) -> String {
        format!("{} {} {} {}", self.weight, self.mean, self.square, self.at)
    }

    /// Moments from [`Moments::encode`]'s text; `None` if it is not that.
    pub fn decode(text: &str) -> Option<Moments> {
        let mut parts = text.split(' ');
        let mut number = || parts.next()?.parse::<f64>().ok().filter(|v| v.is_finite());
        let (weight, mean, square, at) = (number()?, number()?, number()?, number()?);
        Some(Moments {
            weight,
            mean,
            square,
            at: at as i64,
        })
    }
}

/// One bucket of a detector's baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bucket {
    /// The whole series.
    All,
    /// One hour of the day (UTC), 0..24.
    Day(u8),
    /// One hour of the week (Monday 00:00 UTC = 0), 0..168.
    Week(u8),
}

impl Bucket {
    /// The buckets a point at Unix time `at` is scored from and learned into.
    pub fn of(at: i64) -> [Bucket; 3] {
        let (hour, how) = buckets(at);
        [
            Bucket::All,
            Bucket::Day(hour as u8),
            Bucket::Week(how as u8),
        ]
    }

    /// A short name ("all", "d7", "w31"), a store's field name.
    pub fn name(self) -> String {
        match self {
            Bucket::All => "all".to_string(),
            Bucket::Day(h) => format!("d{h}"),
            Bucket::Week(h) => format!("w{h}"),
        }
    }
}

/// Where a detector's buckets are kept: all of them (offline, in
/// [`SeriesDetector`]), or only those a store loaded for the points at hand
/// (online). The scoring and learning are the same code either way.
pub trait Buckets {
    /// A bucket's moments (empty if never learned).
    fn get(&self, bucket: Bucket) -> Moments;
    /// Replaces a bucket's moments.
    fn put(&mut self, bucket: Bucket, moments: Moments);
}

/// What a detector knows besides its buckets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SeriesMeta {
    /// Points learned so far.
    pub seen: u64,
    /// Whether every value so far was a non-negative integer (a count).
    pub counts: bool,
    /// The latest time learned (a point before it is learned as if then).
    pub latest: i64,
}

impl Default for SeriesMeta {
    fn default() -> Self {
        SeriesMeta {
            seen: 0,
            counts: true,
            latest: i64::MIN,
        }
    }
}

/// The baseline's expectation (mean, variance) at Unix time `at`.
pub fn expected(buckets: &impl Buckets, at: i64) -> (f64, f64) {
    let [all, day, week] = Bucket::of(at).map(|b| buckets.get(b));
    let all = (all.mean, all.variance());
    week.shrunk(day.shrunk(all))
}

/// The verdict on `value` at `at` from the past alone (nothing is learned).
pub fn score(
    buckets: &impl Buckets,
    meta: &SeriesMeta,
    at: i64,
    value: f64,
    settings: &DetectorSettings,
) -> Scored {
    let (mean, variance) = expected(buckets, at);
    let counts = meta.counts && is_count(value);
    let spread = if counts {
        variance.max(mean).sqrt()
    } else {
        variance.sqrt()
    };
    let warming_up = meta.seen < settings.min_history || !value.is_finite();
    if warming_up {
        return Scored {
            score: 0.0,
            expected: mean,
            spread,
            warming_up,
        };
    }
    let p = if counts {
        tail::negative_binomial(value as u64, mean, variance, settings.direction)
    } else {
        // A floor on the spread: a constant series is not infinitely sure.
        let floor = 1e-6 * mean.abs().max(1.0);
        let t = (value - mean) / spread.max(floor);
        tail::student_t(t, T_DOF, settings.direction)
    };
    Scored {
        score: (1.0 - p).clamp(0.0, 1.0),
        expected: mean,
        spread,
        warming_up,
    }
}

/// Folds `value` at `at`, as `scored` judged it, into the baseline: clipped
/// to [`CLIP_SIGMAS`] of the expectation once the detector is warm.
pub fn learn(
    buckets: &mut impl Buckets,
    meta: &mut SeriesMeta,
    at: i64,
    value: f64,
    scored: &Scored,
) {
    if !value.is_finite() {
        return;
    }
    let at = at.max(meta.latest);
    let learned = if scored.warming_up || scored.spread == 0.0 {
        value
    } else {
        let reach = CLIP_SIGMAS * scored.spread;
        value.clamp(scored.expected - reach, scored.expected + reach)
    };
    for (bucket, time_constant) in
        Bucket::of(at)
            .into_iter()
            .zip([ALL_TIME_CONSTANT, DAY_TIME_CONSTANT, WEEK_TIME_CONSTANT])
    {
        let mut moments = buckets.get(bucket);
        moments.update(at, learned, time_constant);
        buckets.put(bucket, moments);
    }
    meta.seen += 1;
    meta.counts &= is_count(value);
    meta.latest = at;
}

/// One point's verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    /// 1 − the tail probability of the value under the baseline, in [0, 1]; 0
    /// while warming up.
    pub score: f64,
    /// What the baseline expected.
    pub expected: f64,
    /// Its standard deviation.
    pub spread: f64,
    /// Too little history to score yet.
    pub warming_up: bool,
}

/// The state of one series' detector, every bucket in memory: what
/// `detour-train detect` runs over a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesDetector {
    all: Moments,
    day: Vec<Moments>,
    week: Vec<Moments>,
    meta: SeriesMeta,
}

impl Default for SeriesDetector {
    fn default() -> Self {
        SeriesDetector {
            all: Moments::default(),
            day: vec![Moments::default(); DAY_BUCKETS],
            week: vec![Moments::default(); WEEK_BUCKETS],
            meta: SeriesMeta::default(),
        }
    }
}

impl Buckets for SeriesDetector {
    fn get(&self, bucket: Bucket) -> Moments {
        match bucket {
            Bucket::All => self.all,
            Bucket::Day(h) => self.day[usize::from(h)],
            Bucket::Week(h) => self.week[usize::from(h)],
        }
    }

    fn put(&mut self, bucket: Bucket, moments: Moments) {
        match bucket {
            Bucket::All => self.all = moments,
            Bucket::Day(h) => self.day[usize::from(h)] = moments,
            Bucket::Week(h) => self.week[usize::from(h)] = moments,
        }
    }
}

/// Hour of the day and hour of the week (Monday 00:00 UTC = 0) of a Unix time.
fn buckets(at: i64) -> (usize, usize) {
    let days = at.div_euclid(86_400);
    let hour = (at.rem_euclid(86_400) / 3_600) as usize;
    // 1970-01-01 was a Thursday, day 3 of a week starting on Monday.
    let weekday = (days + 3).rem_euclid(7) as usize;
    (hour, weekday * DAY_BUCKETS + hour)
}

fn is_count(value: f64) -> bool {
    value >= 0.0 && value.fract() == 0.0 && value < 1e15
}

impl SeriesDetector {
    /// A detector that has seen nothing.
    pub fn new() -> Self {
        SeriesDetector::default()
    }

    /// Points seen so far.
    pub fn seen(&self) -> u64 {
        self.meta.seen
    }

    /// The baseline's expectation (mean, variance) at Unix time `at`.
    pub fn expected(&self, at: i64) -> (f64, f64) {
        expected(self, at)
    }

    /// Scores `value` at Unix time `at` from the past alone, then learns it.
    /// Points must come in time order (an earlier one is scored, and learned
    /// as if at the latest time seen).
    pub fn observe(&mut self, at: i64, value: f64, settings: &DetectorSettings) -> Scored {
        let scored = self.score(at, value, settings);
        let mut meta = self.meta;
        learn(self, &mut meta, at, value, &scored);
        self.meta = meta;
        scored
    }

    /// The verdict on `value` at `at`, without learning it.
    pub fn score(&self, at: i64, value: f64, settings: &DetectorSettings) -> Scored {
        score(self, &self.meta, at, value, settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic stream of uniforms (a 64-bit LCG), for tests.
    struct Lcg(u64);
    impl Lcg {
        fn uniform(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }
        /// A Poisson draw by inversion.
        fn poisson(&mut self, mean: f64) -> f64 {
            let u = self.uniform();
            let mut k = 0u64;
            while tail::poisson_cdf(k, mean) < u {
                k += 1;
            }
            k as f64
        }
    }

    /// Hourly counts with a daily and a weekly cycle.
    fn seasonal_mean(at: i64) -> f64 {
        let (hour, how) = buckets(at);
        let daily = 1.0 + 0.8 * (std::f64::consts::TAU * hour as f64 / 24.0).sin();
        let weekend = if how >= 5 * 24 { 0.4 } else { 1.0 };
        6.0 * daily * weekend
    }

    #[test]
    fn on_ordinary_seasonal_counts_the_score_is_calibrated() {
        let settings = DetectorSettings::default();
        let mut detector = SeriesDetector::new();
        let mut rng = Lcg(7);
        let start = 1_767_225_600; // 2026-01-01
        let (mut scored, mut over_99, mut over_999) = (0, 0, 0);
        for i in 0..(24 * 7 * 30) {
            let at = start + i * 3600;
            let value = rng.poisson(seasonal_mean(at));
            let s = detector.observe(at, value, &settings);
            // After the weekly buckets have learned (four weeks).
            if i >= 24 * 7 * 4 {
                scored += 1;
                over_99 += usize::from(s.score > 0.99);
                over_999 += usize::from(s.score > 0.999);
            }
        }
        let rate_99 = over_99 as f64 / scored as f64;
        let rate_999 = over_999 as f64 / scored as f64;
        eprintln!("ordinary points: {rate_99:.4} score > 0.99, {rate_999:.4} > 0.999 of {scored}");
        assert!(
            (0.003..=0.025).contains(&rate_99),
            "score > 0.99 on {rate_99:.4} of ordinary points"
        );
        assert!(
            rate_999 <= 0.004,
            "score > 0.999 on {rate_999:.4} of ordinary points"
        );
    }

    #[test]
    fn a_build_up_against_the_season_is_found_and_an_ordinary_peak_is_not() {
        let settings = DetectorSettings {
            direction: Direction::Up,
            ..DetectorSettings::default()
        };
        let mut detector = SeriesDetector::new();
        let start = 1_767_225_600;
        for i in 0..(24 * 7 * 6) {
            let at = start + i * 3600;
            detector.observe(at, seasonal_mean(at).round(), &settings);
        }
        let at = start + 24 * 7 * 6 * 3600;
        // The daily peak's usual value is ordinary; three times it is not.
        let usual = seasonal_mean(at + 6 * 3600).round();
        let ordinary = detector.score(at + 6 * 3600, usual, &settings);
        let spike = detector.score(at + 6 * 3600, 3.0 * usual + 5.0, &settings);
        assert!(ordinary.score < 0.9, "{ordinary:?}");
        assert!(spike.score > DEFAULT_THRESHOLD, "{spike:?}");
        // The state stays a few kilobytes and serialises.
        let json = serde_json::to_string(&detector).unwrap();
        eprintln!(
            "detector state after six weeks: {} bytes of JSON",
            json.len()
        );
        assert!(json.len() < 20_000, "{} bytes", json.len());
        let back: SeriesDetector = serde_json::from_str(&json).unwrap();
        assert_eq!(
            back.score(at, 9.0, &settings),
            detector.score(at, 9.0, &settings)
        );
    }

    #[test]
    fn a_drop_is_found_downwards_and_values_that_are_not_counts_use_t() {
        let settings = DetectorSettings {
            direction: Direction::Down,
            min_history: 24,
        };
        let mut detector = SeriesDetector::new();
        let mut rng = Lcg(3);
        for i in 0..(24 * 14) {
            let value = 100.0 + 5.0 * (rng.uniform() - 0.5);
            detector.observe(i * 3600, value, &settings);
        }
        let at = 24 * 14 * 3600;
        assert!(detector.score(at, 60.5, &settings).score > DEFAULT_THRESHOLD);
        assert!(
            detector.score(at, 140.5, &settings).score < 0.5,
            "upwards is not looked at"
        );
        assert!(detector.score(at, 100.2, &settings).score < 0.9);
    }
}
