//! Episodes: a series' scores become one alert per disruption — opened when
//! a point crosses the alert threshold, updated while it lasts, resolved
//! after consecutive ordinary points — and an episode that begins at the same
//! time of the week as earlier ones is counted as recurring.

use serde::{Deserialize, Serialize};

use super::series::DEFAULT_THRESHOLD;

const HOUR: i64 = 3_600;
const WEEK: i64 = 7 * 24 * HOUR;
/// Episode starts remembered per series, for recurrence.
const STARTS_KEPT: usize = 8;
/// How far back recurrence looks.
const RECURRENCE_WEEKS: i64 = 5;

/// When an episode opens, updates and ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpisodeRules {
    /// A point at or above this score opens an episode.
    pub open: f64,
    /// A point below this score is ordinary.
    pub calm: f64,
    /// Consecutive ordinary points that end an episode.
    pub calm_points: u32,
    /// An open episode is re-sent at least this often (event time, seconds)
    /// while its points keep coming.
    pub refresh_secs: i64,
}

impl Default for EpisodeRules {
    fn default() -> Self {
        EpisodeRules {
            open: DEFAULT_THRESHOLD,
            calm: 0.9,
            calm_points: 2,
            refresh_secs: HOUR,
        }
    }
}

/// The episode going on, if one is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenEpisode {
    /// The alert's id.
    pub id: String,
    /// When it opened (event time, Unix s).
    pub opened_at: i64,
    /// When it was last sent.
    pub sent_at: i64,
    /// The highest score so far.
    pub peak: f64,
    /// Its severity when last sent (0 = low … 3 = critical).
    pub severity: u8,
    /// The worst severity it has been sent with.
    #[serde(default)]
    pub worst: u8,
    /// Ordinary points in a row.
    pub calm: u32,
    /// Earlier episodes at the same time of the week.
    pub recurrence: u32,
}

/// What a series remembers of its episodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Episodes {
    /// The one going on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<OpenEpisode>,
    /// When the last few began, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub starts: Vec<i64>,
}

/// What one point did to a series' episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// An episode began at this point.
    Opened,
    /// The episode goes on, and is worth sending again (severity rose, or
    /// the refresh interval passed).
    Updated,
    /// The episode ended at this point.
    Resolved,
}

impl Episodes {
    /// Takes one point of `series` at `at` with `score` and `severity`
    /// (0 = low … 3 = critical); says what changed, if anything worth
    /// sending. Warming-up points never open an episode (their score is 0).
    pub fn step(
        &mut self,
        series: &str,
        at: i64,
        score: f64,
        severity: u8,
        rules: &EpisodeRules,
    ) -> Option<Transition> {
        match &mut self.open {
            None if score >= rules.open => {
                let recurrence = self.recurring_at(at);
                // Many points share one time (clamped to when received): an
                // episode reopening at the time the last one opened gets a
                // suffix, so ids stay unique.
                let again = self.starts.iter().filter(|&&s| s == at).count();
                let id = match again {
                    0 => format!("{series}@{at}"),
                    n => format!("{series}@{at}-{n}"),
                };
                self.starts.push(at);
                if self.starts.len() > STARTS_KEPT {
                    self.starts.remove(0);
                }
                self.open = Some(OpenEpisode {
                    id,
                    opened_at: at,
                    sent_at: at,
                    peak: score,
                    severity,
                    worst: severity,
                    calm: 0,
                    recurrence,
                });
                Some(Transition::Opened)
            }
            None => None,
            Some(open) if score < rules.calm => {
                open.calm += 1;
                if open.calm >= rules.calm_points {
                    Some(Transition::Resolved)
                } else {
                    None
                }
            }
            Some(open) => {
                open.calm = 0;
                let worth = severity > open.severity || at - open.sent_at >= rules.refresh_secs;
                open.peak = open.peak.max(score);
                if worth {
                    open.severity = severity;
                    open.worst = open.worst.max(severity);
                    open.sent_at = at;
                    Some(Transition::Updated)
                } else {
                    None
                }
            }
        }
    }

    /// Forgets the episode that [`Transition::Resolved`] ended (after the
    /// caller has built its last alert from it).
    pub fn close(&mut self) -> Option<OpenEpisode> {
        self.open.take()
    }

    /// Earlier episodes that began within an hour of `at`'s time of the week,
    /// in the [`RECURRENCE_WEEKS`] before it.
    fn recurring_at(&self, at: i64) -> u32 {
        self.starts
            .iter()
            .filter(|&&start| {
                let ago = at - start;
                let offset = ago.rem_euclid(WEEK);
                (WEEK - HOUR..=RECURRENCE_WEEKS * WEEK + HOUR).contains(&ago)
                    && (offset <= HOUR || offset >= WEEK - HOUR)
            })
            .count() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_episode_opens_once_updates_and_resolves_after_calm_points() {
        let rules = EpisodeRules::default();
        let mut e = Episodes::default();
        assert_eq!(e.step("s", 0, 0.5, 0, &rules), None);
        assert_eq!(e.step("s", 60, 0.9995, 1, &rules), Some(Transition::Opened));
        assert_eq!(e.open.as_ref().unwrap().id, "s@60");
        // Still high, nothing new: nothing to send.
        assert_eq!(e.step("s", 120, 0.9991, 1, &rules), None);
        // Severity rose.
        assert_eq!(
            e.step("s", 180, 0.9992, 2, &rules),
            Some(Transition::Updated)
        );
        // One ordinary point is not the end; a high one resets the count.
        assert_eq!(e.step("s", 240, 0.2, 2, &rules), None);
        assert_eq!(e.step("s", 300, 0.95, 2, &rules), None);
        assert_eq!(e.step("s", 360, 0.2, 2, &rules), None);
        assert_eq!(e.step("s", 420, 0.1, 2, &rules), Some(Transition::Resolved));
        assert_eq!(e.close().unwrap().opened_at, 60);
        assert_eq!(e.step("s", 480, 0.1, 0, &rules), None);
    }

    #[test]
    fn an_episode_at_the_same_time_of_week_is_recurring() {
        let rules = EpisodeRules::default();
        let mut e = Episodes::default();
        let monday_9 = 4 * 86_400 + 9 * HOUR; // 1970-01-05 was a Monday
        for week in 0..3 {
            let start = monday_9 + week * WEEK + 20 * 60 * week;
            assert_eq!(
                e.step("s", start, 0.9999, 1, &rules),
                Some(Transition::Opened)
            );
            assert_eq!(e.open.as_ref().unwrap().recurrence, week as u32);
            e.step("s", start + 600, 0.0, 0, &rules);
            e.step("s", start + 1200, 0.0, 0, &rules);
            e.close();
        }
        // A Tuesday episode is not a Monday one.
        let tuesday = monday_9 + 3 * WEEK + 86_400;
        e.step("s", tuesday, 0.9999, 1, &rules);
        assert_eq!(e.open.as_ref().unwrap().recurrence, 0);
    }
}
