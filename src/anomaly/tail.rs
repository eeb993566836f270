//! Tail probabilities of the distributions the detectors test against, from
//! the regularized incomplete gamma and beta functions (`puruspe`). Discrete
//! tails are mid-p values (half the probability of the observed value
//! counted), so that under the null a p-value is close to uniform instead of
//! conservative in proportion to how sparse the counts are.

use puruspe::{betai, gammp, gammq};

/// Which way a departure from the expected counts as anomalous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Only more than expected (a queue building up, failures piling up).
    Up,
    /// Only less than expected (throughput dropping).
    Down,
    /// Either way (two-sided).
    Both,
}

/// The mid-p tail of a discrete count `x` with upper tail `above(k) = P(X ≥ k)`.
fn mid_p(x: u64, direction: Direction, above: impl Fn(u64) -> f64) -> f64 {
    let at_least = above(x);
    let more = above(x + 1);
    let upper = 0.5 * (at_least + more);
    let lower = 1.0 - upper;
    pick(upper, lower, direction)
}

fn pick(upper: f64, lower: f64, direction: Direction) -> f64 {
    let p = match direction {
        Direction::Up => upper,
        Direction::Down => lower,
        Direction::Both => 2.0 * upper.min(lower),
    };
    p.clamp(0.0, 1.0)
}

/// Mid-p value of a count `x` under a Poisson distribution of mean `mean`.
pub fn poisson(x: u64, mean: f64, direction: Direction) -> f64 {
    let mean = mean.max(1e-9);
    // P(X ≥ k) = P(k, mean), the regularized lower incomplete gamma; 1 at k = 0.
    mid_p(x, direction, |k| {
        if k == 0 { 1.0 } else { gammp(k as f64, mean) }
    })
}

/// Mid-p value of a count `x` under a negative binomial of mean `mean` and
/// variance `variance` (> mean; Poisson otherwise): counts that vary more
/// than a Poisson's, as real operational counts do.
pub fn negative_binomial(x: u64, mean: f64, variance: f64, direction: Direction) -> f64 {
    let mean = mean.max(1e-9);
    if variance <= mean * 1.0001 {
        return poisson(x, mean, direction);
    }
    // Failures before the r-th success, success probability p.
    let r = mean * mean / (variance - mean);
    let p = r / (r + mean);
    // P(X ≥ k) = I_{1-p}(k, r); 1 at k = 0.
    mid_p(x, direction, |k| {
        if k == 0 {
            1.0
        } else {
            betai(k as f64, r, 1.0 - p)
        }
    })
}

/// Mid-p value of `k` adverse outcomes of `n` under a binomial of rate `rate`.
pub fn binomial(k: u64, n: u64, rate: f64, direction: Direction) -> f64 {
    let rate = rate.clamp(1e-9, 1.0 - 1e-9);
    // P(X ≥ j) = I_rate(j, n - j + 1); 1 at j = 0, 0 beyond n.
    mid_p(k.min(n), direction, |j| {
        if j == 0 {
            1.0
        } else if j > n {
            0.0
        } else {
            betai(j as f64, (n - j + 1) as f64, rate)
        }
    })
}

/// P-value of a standardised residual `t` under Student's t with `dof`
/// degrees of freedom (heavier tails than a normal: real residuals have them).
pub fn student_t(t: f64, dof: f64, direction: Direction) -> f64 {
    if !t.is_finite() {
        return if t.is_nan() {
            1.0
        } else {
            pick(f64::from(t < 0.0), f64::from(t > 0.0), direction)
        };
    }
    // P(|T| > |t|) = I_{dof/(dof+t²)}(dof/2, 1/2).
    let two_sided = betai(dof / 2.0, 0.5, dof / (dof + t * t));
    let beyond = 0.5 * two_sided;
    let (upper, lower) = if t >= 0.0 {
        (beyond, 1.0 - beyond)
    } else {
        (1.0 - beyond, beyond)
    };
    pick(upper, lower, direction)
}

/// P(X ≤ x) of a Poisson: the regularized upper incomplete gamma Q(x + 1, mean).
pub fn poisson_cdf(x: u64, mean: f64) -> f64 {
    gammq(x as f64 + 1.0, mean.max(1e-9))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_match_direct_sums() {
        // Poisson(3): P(X ≥ 6) by summing the pmf.
        let pmf = |k: u64| {
            (-3.0f64).exp() * 3f64.powi(k as i32) / (1..=k).map(|i| i as f64).product::<f64>()
        };
        let at_least_6: f64 = 1.0 - (0..6).map(pmf).sum::<f64>();
        let mid = at_least_6 - 0.5 * pmf(6);
        assert!((poisson(6, 3.0, Direction::Up) - mid).abs() < 1e-10);
        assert!((poisson_cdf(5, 3.0) - (0..6).map(pmf).sum::<f64>()).abs() < 1e-10);
        // Binomial(4, 0.08): P(X ≥ 3) = 4·0.08³·0.92 + 0.08⁴.
        let p3 = 4.0 * 0.08f64.powi(3) * 0.92;
        let p4 = 0.08f64.powi(4);
        let mid = p3 + p4 - 0.5 * p3;
        assert!((binomial(3, 4, 0.08, Direction::Up) - mid).abs() < 1e-10);
        // Student's t with many degrees of freedom is nearly normal: P(Z > 1.96) ≈ 0.025.
        assert!((student_t(1.96, 1e6, Direction::Up) - 0.025).abs() < 1e-3);
        assert!((student_t(-1.96, 1e6, Direction::Both) - 0.05).abs() < 2e-3);
        // A negative binomial is wider than the Poisson of its mean.
        assert!(negative_binomial(12, 5.0, 20.0, Direction::Up) > poisson(12, 5.0, Direction::Up));
    }

    #[test]
    fn sparse_counts_are_weak_evidence_and_many_are_strong() {
        // Against a usual 8 %: three failures of four, and 40 of 60.
        let few = binomial(3, 4, 0.08, Direction::Up);
        let many = binomial(40, 60, 0.08, Direction::Up);
        // A z-score of the rate would call 3 of 4 a 4.9σ event (p ≈ 5e-7).
        let z = (0.75 - 0.08) / (0.08f64 * 0.92 / 4.0).sqrt();
        let z_p = student_t(z, 1e6, Direction::Up);
        assert!(
            few > 1e3 * z_p,
            "3 of 4: p = {few} against the z-score's {z_p}"
        );
        assert!(few > 5e-4, "3 of 4: p = {few}");
        assert!(many < 1e-20, "40 of 60: p = {many}");
    }
}
