//! Held-out metrics of a probabilistic classifier: base rate, ROC-AUC, PR-AUC
//! (average precision), Brier score, log loss, and a reliability table by decile
//! of predicted probability with its expected calibration error.

use serde::Serialize;

/// Metrics of predictions against outcomes.
#[derive(Debug, Clone, Serialize)]
pub struct Metrics {
    pub rows: usize,
    pub base_rate: f64,
    pub roc_auc: f64,
    pub pr_auc: f64,
    pub brier: f64,
    pub log_loss: f64,
    /// Expected calibration error over the reliability deciles.
    pub ece: f64,
    pub reliability: Vec<ReliabilityBin>,
}

/// One decile of predicted probability.
#[derive(Debug, Clone, Serialize)]
pub struct ReliabilityBin {
    pub rows: usize,
    pub mean_predicted: f64,
    pub observed_rate: f64,
}

/// Computes every metric. `predicted` and `actual` have the same length.
pub fn evaluate(predicted: &[f64], actual: &[bool]) -> Metrics {
    assert_eq!(predicted.len(), actual.len(), "one prediction per outcome");
    let n = predicted.len();
    let positives = actual.iter().filter(|a| **a).count();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| predicted[a].total_cmp(&predicted[b]));
    let brier = predicted
        .iter()
        .zip(actual)
        .map(|(p, a)| (p - f64::from(u8::from(*a))).powi(2))
        .sum::<f64>()
        / n.max(1) as f64;
    let log_loss = predicted
        .iter()
        .zip(actual)
        .map(|(p, a)| {
            let p = p.clamp(1e-12, 1.0 - 1e-12);
            if *a { -p.ln() } else { -(1.0 - p).ln() }
        })
        .sum::<f64>()
        / n.max(1) as f64;
    let reliability = reliability(&order, predicted, actual);
    let ece = reliability
        .iter()
        .map(|b| b.rows as f64 / n.max(1) as f64 * (b.mean_predicted - b.observed_rate).abs())
        .sum();
    Metrics {
        rows: n,
        base_rate: positives as f64 / n.max(1) as f64,
        roc_auc: roc_auc(&order, predicted, actual, positives),
        pr_auc: average_precision(&order, predicted, actual, positives),
        brier,
        log_loss,
        ece,
        reliability,
    }
}

/// ROC-AUC by the rank-sum formula, ties sharing their average rank.
fn roc_auc(order: &[usize], predicted: &[f64], actual: &[bool], positives: usize) -> f64 {
    let negatives = order.len() - positives;
    if positives == 0 || negatives == 0 {
        return f64::NAN;
    }
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && predicted[order[j + 1]] == predicted[order[i]] {
            j += 1;
        }
        let average_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            if actual[k] {
                rank_sum += average_rank;
            }
        }
        i = j + 1;
    }
    let p = positives as f64;
    (rank_sum - p * (p + 1.0) / 2.0) / (p * negatives as f64)
}

/// Average precision: precision at each positive, highest scores first.
fn average_precision(order: &[usize], predicted: &[f64], actual: &[bool], positives: usize) -> f64 {
    if positives == 0 {
        return f64::NAN;
    }
    let (mut seen, mut hits, mut sum) = (0usize, 0usize, 0.0);
    let descending: Vec<usize> = order.iter().rev().copied().collect();
    let mut i = 0;
    while i < descending.len() {
        // Ties are taken as one threshold.
        let mut j = i;
        while j + 1 < descending.len() && predicted[descending[j + 1]] == predicted[descending[i]] {
            j += 1;
        }
        let group_hits = descending[i..=j].iter().filter(|&&k| actual[k]).count();
        seen += j - i + 1;
        hits += group_hits;
        sum += group_hits as f64 * hits as f64 / seen as f64;
        i = j + 1;
    }
    sum / positives as f64
}

fn reliability(order: &[usize], predicted: &[f64], actual: &[bool]) -> Vec<ReliabilityBin> {
    let n = order.len();
    (0..10)
        .filter_map(|decile| {
            let (from, to) = (n * decile / 10, n * (decile + 1) / 10);
            if from == to {
                return None;
            }
            let bin = &order[from..to];
            let rows = bin.len();
            Some(ReliabilityBin {
                rows,
                mean_predicted: bin.iter().map(|&k| predicted[k]).sum::<f64>() / rows as f64,
                observed_rate: bin.iter().filter(|&&k| actual[k]).count() as f64 / rows as f64,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_and_inverted_rankings() {
        let actual = [false, false, true, true];
        assert_eq!(evaluate(&[0.1, 0.2, 0.8, 0.9], &actual).roc_auc, 1.0);
        assert_eq!(evaluate(&[0.9, 0.8, 0.2, 0.1], &actual).roc_auc, 0.0);
        assert_eq!(evaluate(&[0.5; 4], &actual).roc_auc, 0.5);
    }

    #[test]
    fn brier_and_average_precision() {
        let m = evaluate(&[0.0, 1.0, 0.5, 0.5], &[false, true, true, false]);
        assert!((m.brier - 0.125).abs() < 1e-12);
        // Ranking: 1.0 (hit), then a tie of two with one hit: AP = (1 + 1 * 2/3) / 2.
        assert!((m.pr_auc - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
    }
}
