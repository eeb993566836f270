//! Unit tests of `evaluate-recommendations`' parts: the legs and records, the
//! naive policies' picks and their shared prior, the policies' labels, and the
//! two off-policy estimates on hand-built decisions.

use std::collections::HashMap;

use detour::domain::{Shipment, ShipmentStatus, Timestamp};
use detour::features::aggregates::{
    AggregateRecord, WINDOW_COUNT, WindowId, shipment_counters as sc,
};
use detour::features::vectors::{PRIOR_FAILURE_RATE, PRIOR_WEIGHT, smoothed};

use super::decision::{Choice, Pick, Taken, four_week_rate, lowest_rate, whole_history_rate};
use super::legs::{Legs, lane_records, nearby_failure_share, record_before};
use super::policy::{Naive, Policy};
use super::scoring::{score_logged, score_matched};

fn taken(group: &str, actual: &str, failed: bool, recommended: &str) -> Taken {
    Taken {
        entity: format!("{group}-{actual}-{failed}"),
        group: group.into(),
        actual: actual.into(),
        actual_failed: failed,
        options: vec![Choice {
            option: actual.into(),
            cost: 10.0,
            p_fail: f64::NAN,
        }],
        recommended: recommended.into(),
        naive: actual.into(),
        naive_history: None,
        nearby: Vec::new(),
        week: 0,
    }
}

impl Taken {
    fn clone_with_week(&self, week: i64) -> Taken {
        Taken {
            entity: self.entity.clone(),
            group: self.group.clone(),
            week,
            actual: self.actual.clone(),
            actual_failed: self.actual_failed,
            options: self.options.clone(),
            recommended: self.recommended.clone(),
            naive: self.naive.clone(),
            naive_history: self.naive_history.clone(),
            nearby: self.nearby.clone(),
        }
    }
}

#[test]
fn the_whole_history_naive_counts_outcomes_known_before_the_decision() {
    let hour = 3_600_000;
    // A leg of `carrier` on O→D due at `arrived` hours (departing 2 h
    // earlier), arriving `late` minutes late, or cancelled (known at its
    // departure).
    let leg = |carrier: &str, arrived: i64, late: Option<i64>| Shipment {
        tracking: Default::default(),
        shipment_id: format!("{carrier}{arrived}"),
        carrier: carrier.into(),
        origin: "O".into(),
        destination: "D".into(),
        scheduled_departure: Timestamp(arrived * hour - 2 * hour),
        scheduled_arrival: Timestamp(arrived * hour),
        actual_departure: None,
        actual_arrival: late.map(|m| Timestamp(arrived * hour + m * 60_000)),
        status: match late {
            Some(_) => ShipmentStatus::Delivered,
            None => ShipmentStatus::Cancelled,
        },
    };
    // A: on time at 1 h, 40 min late at 5 h, on time at 9 h (out of order).
    // B: cancelled (known at its departure, 8 h), still in transit at 3 h.
    let mut in_transit = leg("B", 3, Some(0));
    in_transit.status = ShipmentStatus::InTransit;
    let shipments = [
        leg("A", 9, Some(0)),
        leg("A", 1, Some(0)),
        leg("A", 5, Some(40)),
        leg("B", 10, None),
        in_transit,
    ];
    let records = lane_records(&shipments, 15.0);
    let at = |h: i64| Timestamp(h * hour);
    let lane = ("O", "D");
    assert_eq!(record_before(&records, "A", lane, at(0)), (0, 0));
    assert_eq!(record_before(&records, "A", lane, at(6)), (1, 2));
    // An outcome known at the decision's own moment is not yet in the store.
    assert_eq!(record_before(&records, "A", lane, at(9)), (1, 2));
    assert_eq!(
        record_before(&records, "A", lane, Timestamp(9 * hour + 1)),
        (1, 3)
    );
    assert_eq!(record_before(&records, "B", lane, at(8)), (0, 0));
    assert_eq!(record_before(&records, "B", lane, at(9)), (1, 1));
    assert_eq!(record_before(&records, "C", lane, at(9)), (0, 0));
    assert_eq!(record_before(&records, "A", ("O", "E"), at(9)), (0, 0));

    let option = |code: &str, cost: f64| Choice {
        option: code.into(),
        cost,
        p_fail: f64::NAN,
    };
    let best = |options: &[Choice], h: i64| {
        lowest_rate(options, |o| {
            whole_history_rate(&records, &o.option, lane, at(h))
        })
    };
    let options = [option("A", 10.0), option("B", 10.0), option("C", 10.0)];
    // At 6 h: A 1.2/4 = 0.3, B and C unseen at 0.1 — a tie, to the first code.
    assert_eq!(best(&options, 6).as_deref(), Some("B"));
    // Ties go to the cheaper first.
    let cheaper_c = [option("A", 10.0), option("B", 10.0), option("C", 5.0)];
    assert_eq!(best(&cheaper_c, 6).as_deref(), Some("C"));
    // After B's cancellation (1.2/3 = 0.4) only C is still unseen.
    assert_eq!(best(&options, 10).as_deref(), Some("C"));
    // With A's clean record longer, it beats B's failure.
    let a_or_b = [option("A", 10.0), option("B", 10.0)];
    assert_eq!(best(&a_or_b, 10).as_deref(), Some("A"));
    assert_eq!(best(&[], 10), None);
}

#[test]
fn a_logged_policy_is_scored_where_it_did_what_was_done_weighted_by_propensity() {
    // Lane L1: A used 3 times (1 failure), B once (failed). Lane L2: C twice,
    // no failures. The policy picks B on L1 and C on L2.
    let decisions = [
        taken("L1", "A", true, "B"),
        taken("L1", "A", false, "B"),
        taken("L1", "A", false, "B"),
        taken("L1", "B", true, "B"),
        taken("L2", "C", false, "C"),
        taken("L2", "C", false, "C"),
    ];
    let [current, recommended, naive, history] = score_logged(&decisions, 100.0);
    assert_eq!(current.1.followed, 6);
    assert!((current.1.failure_rate() - 2.0 / 6.0).abs() < 1e-12);
    assert!((current.1.mean_cost() - (10.0 + 100.0 * 2.0 / 6.0)).abs() < 1e-9);
    // Scored on B (weight 4/1) and the two C rows (weight 2/2 each): had it
    // been followed, half the decisions (L1's) would have failed.
    assert_eq!(recommended.1.decisions, 6);
    assert_eq!(recommended.1.followed, 3);
    assert!((recommended.1.failure_rate() - 4.0 / 6.0).abs() < 1e-12);
    let se = recommended.1.standard_error();
    assert!(se > 0.0 && se < 1.0, "{se}");
    // A policy that agrees with every decision is scored on all of them.
    assert_eq!(naive.1.followed, 6);
    // One that does not apply (no whole-history pick) is asked nothing.
    assert_eq!(history.1.decisions, 0);

    // Where it applies, it is scored like the others: here it picks C on L2
    // (followed twice, no failure) and A on L1 (followed three times).
    let mut with_history = decisions.map(|t| t.clone_with_week(0));
    for t in &mut with_history {
        t.naive_history = Some(if t.group == "L1" { "A" } else { "C" }.into());
    }
    let [.., history] = score_logged(&with_history, 100.0);
    assert_eq!(history.1.decisions, 6);
    assert_eq!(history.1.followed, 5);
    // L1's A rows weigh 4/3 each (1 failure in 3), L2's C rows 2/2 each.
    let expected = (4.0 / 3.0) / (3.0 * 4.0 / 3.0 + 2.0);
    assert!((history.1.failure_rate() - expected).abs() < 1e-12);
}

#[test]
fn matched_scores_pair_every_policy_on_decisions_where_all_options_had_nearby_legs() {
    let mut legs: Legs = HashMap::new();
    let lane = ("O".to_string(), "D".to_string());
    let hour = 3_600_000;
    // (scheduled departure, failed). A: 1 of 4 legs failed within 12 h of
    // t = 0, one far-off failure; B: 2 of 3 near, one an hour before t = 0.
    legs.insert(
        ("A".into(), lane.0.clone(), lane.1.clone()),
        vec![
            (-11 * hour, true),
            (0, false),
            (hour, false),
            (12 * hour, false),
            (13 * hour, true),
        ],
    );
    legs.insert(
        ("B".into(), lane.0.clone(), lane.1.clone()),
        vec![(-hour, false), (hour, true), (2 * hour, true)],
    );
    let share = |carrier: &str, departure: i64, decided: i64| {
        nearby_failure_share(
            &legs,
            carrier,
            ("O", "D"),
            Timestamp(departure),
            Timestamp(decided),
        )
    };
    let early = -24 * hour;
    assert_eq!(share("A", 0, early), Some(0.25));
    assert_eq!(share("B", 0, early), Some(2.0 / 3.0));
    // Decided at t = 0, only legs scheduled after it count, whatever their
    // outcome.
    assert_eq!(share("A", 0, 0), Some(0.0));
    assert_eq!(share("B", 0, 0), Some(1.0));
    assert_eq!(share("C", 0, early), None);
    assert_eq!(share("A", 40 * hour, early), None);
    assert_eq!(share("A", 0, 20 * hour), None);

    let decision = |week: i64,
                    (actual, recommended, naive, history): (&str, &str, &str, &str),
                    nearby: Vec<(&str, Option<f64>)>| {
        let mut t = taken("L", actual, false, recommended);
        t.week = week;
        t.naive = naive.into();
        t.naive_history = Some(history.into());
        t.nearby = nearby
            .into_iter()
            .map(|(c, s)| (c.to_string(), s))
            .collect();
        t
    };
    let decisions = [
        decision(
            1,
            ("A", "B", "A", "B"),
            vec![("A", Some(0.25)), ("B", Some(1.0))],
        ),
        decision(
            2,
            ("B", "A", "A", "B"),
            vec![("A", Some(0.5)), ("B", Some(0.0))],
        ),
        // Left out: an option without nearby legs, and a decision without a choice.
        decision(
            3,
            ("A", "B", "A", "A"),
            vec![("A", Some(0.25)), ("B", None)],
        ),
        decision(4, ("A", "A", "A", "A"), vec![("A", Some(0.25))]),
    ];
    let [current, recommended, naive, history, best] = score_matched(&decisions);
    for (name, r) in [&current, &recommended, &naive, &history, &best] {
        assert_eq!(r.decisions, 2, "{name}");
    }
    assert!((current.1.failure_rate() - 0.125).abs() < 1e-12);
    assert!((recommended.1.failure_rate() - 0.75).abs() < 1e-12);
    assert!((naive.1.failure_rate() - 0.375).abs() < 1e-12);
    assert!((history.1.failure_rate() - 0.5).abs() < 1e-12);
    assert!((best.1.failure_rate() - 0.125).abs() < 1e-12);
    // Paired: +0.75 and +0.0 against naive, in two clusters (two weeks).
    assert!((recommended.1.versus(Naive::FourWeeks) - 0.375).abs() < 1e-12);
    assert!((recommended.1.versus_se(Naive::FourWeeks) - 0.375).abs() < 1e-12);
    assert_eq!(naive.1.versus(Naive::FourWeeks), 0.0);
    // Against the whole-history naive (B both times): 0 and +0.5, a mean of
    // 0.25 with error √(2 · (0.25² + 0.25²)) / 2.
    assert!((recommended.1.versus(Naive::WholeHistory) - 0.25).abs() < 1e-12);
    assert!((recommended.1.versus_se(Naive::WholeHistory) - 0.25).abs() < 1e-12);
    assert_eq!(history.1.versus(Naive::WholeHistory), 0.0);
    // And the two naive policies against each other: +0.75 and −0.5.
    assert!((history.1.versus(Naive::FourWeeks) - 0.125).abs() < 1e-12);
    assert!((naive.1.versus(Naive::WholeHistory) + 0.125).abs() < 1e-12);
    // A decision without a whole-history pick (a reallocation) is not paired.
    let mut reallocation = decisions[0].clone_with_week(1);
    reallocation.naive_history = None;
    assert_eq!(score_matched(&[reallocation])[0].1.decisions, 0);

    // Clusters of several decisions: week 1 holds differences +0.75 and
    // +0.25 (sum 1.0), week 2 holds -0.5. Mean 0.5 / 3; the error is
    // √(2/1 · ((1.0 − 2m)² + (−0.5 − m)²)) / 3.
    let clustered = [
        decision(
            1,
            ("A", "B", "A", "A"),
            vec![("A", Some(0.25)), ("B", Some(1.0))],
        ),
        decision(
            1,
            ("A", "B", "A", "A"),
            vec![("A", Some(0.25)), ("B", Some(0.5))],
        ),
        decision(
            2,
            ("A", "B", "A", "A"),
            vec![("A", Some(0.5)), ("B", Some(0.0))],
        ),
    ];
    let [_, recommended, ..] = score_matched(&clustered);
    let m = 0.5 / 3.0;
    assert!((recommended.1.versus(Naive::FourWeeks) - m).abs() < 1e-12);
    let expected = (2.0 * ((1.0 - 2.0 * m).powi(2) + (-0.5 - m).powi(2))).sqrt() / 3.0;
    assert!((recommended.1.versus_se(Naive::FourWeeks) - expected).abs() < 1e-12);
    // Taken as independent, the same three differences would give less.
    let d = [0.75f64, 0.25, -0.5];
    let naive_se = (d.iter().map(|x| (x - m).powi(2)).sum::<f64>() / 2.0 / 3.0).sqrt();
    assert!(expected > naive_se, "{expected} vs {naive_se}");
    // One cluster in all: no error estimate.
    let one_week = [
        clustered[0].clone_with_week(1),
        clustered[2].clone_with_week(1),
    ];
    let [_, recommended, ..] = score_matched(&one_week);
    assert!(recommended.1.versus_se(Naive::FourWeeks).is_nan());
}

#[test]
fn every_policy_has_its_own_label_and_its_own_row() {
    let labels = Policy::ALL.map(Policy::label);
    // The report's row names (README quotes them).
    assert_eq!(
        labels,
        [
            "current plan",
            "top recommendation",
            "naive",
            "naive, whole history",
            "best in hindsight",
        ]
    );
    for (row, policy) in Policy::ALL.into_iter().enumerate() {
        assert_eq!(policy as usize, row, "{policy:?} indexes its own row");
        assert_eq!(policy.to_string(), policy.label());
        assert_eq!(
            labels.iter().filter(|l| **l == policy.label()).count(),
            1,
            "{policy:?}"
        );
    }
    // A logged history's table is the same rows without hindsight.
    assert_eq!(Policy::LOGGED[..], Policy::ALL[..4]);
    assert!(!Policy::LOGGED.contains(&Policy::Hindsight));
    // The paired differences are indexed by `Naive`, in the table's order.
    for (i, naive) in Naive::BOTH.into_iter().enumerate() {
        assert_eq!(naive as usize, i);
    }
    assert_eq!(Naive::FourWeeks.policy(), Policy::Naive);
    assert_eq!(Naive::WholeHistory.policy(), Policy::NaiveWholeHistory);
}

#[test]
fn each_policy_picks_its_own_option() {
    let mut t = taken("L", "A", false, "B");
    t.naive = "C".into();
    assert_eq!(t.pick(Policy::CurrentPlan), Pick::Plan);
    assert_eq!(t.pick(Policy::Recommended), Pick::Chose("B"));
    assert_eq!(t.pick(Policy::Naive), Pick::Chose("C"));
    assert_eq!(t.pick(Policy::Hindsight), Pick::ByOutcome);
    // A reallocation has no whole-history pick.
    assert_eq!(t.pick(Policy::NaiveWholeHistory), Pick::NotApplicable);
    t.naive_history = Some("D".into());
    assert_eq!(t.pick(Policy::NaiveWholeHistory), Pick::Chose("D"));
}

#[test]
fn the_naive_policies_smooth_with_the_features_prior() {
    // Unseen: the prior itself, whichever record the policy reads.
    let t = 1_000_000.0;
    assert_eq!(four_week_rate(None, t), PRIOR_FAILURE_RATE);
    assert_eq!(
        four_week_rate(Some(&AggregateRecord::default()), t),
        PRIOR_FAILURE_RATE
    );
    let records = lane_records(&[], 15.0);
    assert_eq!(
        whole_history_rate(&records, "A", ("O", "D"), Timestamp(0)),
        PRIOR_FAILURE_RATE
    );

    // One failure in four legs over four weeks: pulled towards the prior by
    // the features' own pseudo-observations, not the raw 1/4.
    let mut record = AggregateRecord {
        counters_at: Some(t),
        ..AggregateRecord::default()
    };
    let month = WindowId::MONTH.index;
    record.counters[sc::FAILED * WINDOW_COUNT + month] = 1.0;
    record.counters[sc::DONE * WINDOW_COUNT + month] = 4.0;
    let rate = four_week_rate(Some(&record), t);
    assert_eq!(rate, smoothed(1.0, 4.0, PRIOR_FAILURE_RATE));
    let by_hand = (1.0 + PRIOR_WEIGHT * PRIOR_FAILURE_RATE) / (4.0 + PRIOR_WEIGHT);
    assert!((rate - by_hand).abs() < 1e-12 && (rate - 0.25).abs() > 1e-3);

    // The whole-history record is smoothed the same way: A fails one of two
    // legs known before 10 h.
    let hour = 3_600_000;
    let leg = |id: &str, arrived: i64, late: i64| Shipment {
        tracking: Default::default(),
        shipment_id: id.into(),
        carrier: "A".into(),
        origin: "O".into(),
        destination: "D".into(),
        scheduled_departure: Timestamp(arrived * hour - 2 * hour),
        scheduled_arrival: Timestamp(arrived * hour),
        actual_departure: None,
        actual_arrival: Some(Timestamp(arrived * hour + late * 60_000)),
        status: ShipmentStatus::Delivered,
    };
    let records = lane_records(&[leg("1", 3, 0), leg("2", 5, 40)], 15.0);
    assert_eq!(
        whole_history_rate(&records, "A", ("O", "D"), Timestamp(10 * hour)),
        smoothed(1.0, 2.0, PRIOR_FAILURE_RATE)
    );
}
