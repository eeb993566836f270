//! `evaluate-recommendations` on the two kinds of history a data scientist has:
//! a simulated one (counterfactual truth for every option) and a real, logged one
//! (only `shipments.csv`, outcomes only for what was done).

mod common;

use std::path::Path;

use detour::recommend::Policy;
use detour_training::recommend_eval::{self, Evaluation, Naive, RecommendEvalSettings};

fn evaluate(data: &Path, models: &Path) -> (Evaluation, Evaluation) {
    recommend_eval::run(&RecommendEvalSettings {
        data: data.to_path_buf(),
        models: models.to_path_buf(),
        from: None,
        to: None,
        lead_hours: 24.0,
        reroute_policy: Policy::REROUTE,
        reallocation_policy: Policy::REALLOCATION,
        report: None,
        outcomes: None,
        alerts: true,
    })
    .unwrap()
}

#[test]
fn a_logged_history_of_shipments_alone_is_evaluated_off_policy() {
    let dir = common::scratch("receval", "logged");
    let simulated = dir.join("simulated");
    common::simulate(5, "2026-03-02T00:00:00Z", 30, 1500.0, &simulated);
    // What a carrier's export looks like: shipments and nothing else — no
    // network.toml (carriers come from the history), no truth, no orders.
    let logged = dir.join("logged");
    std::fs::create_dir_all(&logged).unwrap();
    std::fs::copy(
        simulated.join("shipments.csv"),
        logged.join("shipments.csv"),
    )
    .unwrap();
    let models = dir.join("models");
    common::train_quick(&logged, &models, "receval-test");

    let (reroutes, reallocations) = evaluate(&logged, &models);
    let Evaluation::Logged(estimates) = reroutes else {
        panic!("a history without truth is evaluated off-policy, got {reroutes:?}");
    };
    let [current, recommended, naive, history] = &estimates.inverse_propensity;
    assert!(current.1.decisions > 1000, "{current:?}");
    assert_eq!(current.1.followed, current.1.decisions);
    for (name, r) in [recommended, naive, history] {
        assert_eq!(r.decisions, current.1.decisions, "{name}");
        assert!(
            r.followed > 100 && r.followed < r.decisions,
            "{name} is scored where it agreed with the history: {r:?}"
        );
        let rate = r.failure_rate();
        assert!((0.0..=1.0).contains(&rate), "{name}: {rate}");
        assert!(r.standard_error() > 0.0 && r.standard_error() < 0.05);
    }
    // The history picks the cheapest carrier half the time; ranking by risk (no
    // rates without network.toml) must fail clearly less often.
    assert!(
        recommended.1.failure_rate() + 3.0 * recommended.1.standard_error()
            < current.1.failure_rate(),
        "recommended {:.4} ± {:.4} vs current plan {:.4}",
        recommended.1.failure_rate(),
        recommended.1.standard_error(),
        current.1.failure_rate()
    );
    // Paired on nearby legs: every policy on the same decisions. The history's
    // cheapest-half-the-time picks fail more than the ranking's, by far more
    // than the paired error; hindsight is below everything else.
    let [m_current, m_recommended, m_naive, m_history, m_best] = &estimates.matched;
    assert!(m_current.1.decisions > 500, "{m_current:?}");
    assert!(m_best.1.failure_rate() < m_naive.1.failure_rate());
    assert!(m_best.1.failure_rate() < m_history.1.failure_rate());
    assert!(m_best.1.failure_rate() < m_recommended.1.failure_rate());
    for naive in [Naive::FourWeeks, Naive::WholeHistory] {
        assert!(
            m_current.1.versus(naive) - m_recommended.1.versus(naive)
                > 3.0 * (m_current.1.versus_se(naive) + m_recommended.1.versus_se(naive)),
            "{naive:?}: {m_current:?} {m_recommended:?}"
        );
    }
    assert!(
        matches!(&reallocations, Evaluation::Skipped(why) if why.contains("orders.csv")),
        "{reallocations:?}"
    );

    // The same shipments with the simulator's truth beside them are evaluated
    // against the counterfactuals instead.
    std::fs::copy(
        simulated.join("truth_reroutes.csv"),
        logged.join("truth_reroutes.csv"),
    )
    .unwrap();
    let (simulated, _) = evaluate(&logged, &models);
    let Evaluation::Simulated(truth_rows) = &simulated else {
        panic!("with truth, the counterfactuals are used, got {simulated:?}");
    };
    assert!(truth_rows[0].1.decisions > 100, "{truth_rows:?}");
    // The off-policy estimate agrees with what the simulator knows: the mean true
    // failure probability of the carriers the ranking picked (on the sampled
    // decisions that have truth).
    let pairs = [
        (recommended, &truth_rows[1]),
        (naive, &truth_rows[2]),
        (history, &truth_rows[3]),
    ];
    for (logged, truth) in pairs {
        let expected = truth.1.expected_failure / truth.1.decisions as f64;
        let (estimate, se) = (logged.1.failure_rate(), logged.1.standard_error());
        assert!(
            (estimate - expected).abs() < 4.0 * se + 0.01,
            "{}: off policy {estimate:.4} ± {se:.4}, truth {expected:.4}",
            logged.0
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
