//! The network's two paths held to each other and to the arithmetic.

use super::*;

/// Two inputs (schema features 2 and 0) → 2 ReLU units → log-odds.
fn small() -> Mlp {
    Mlp::new(MlpWeights {
        inputs: vec![2, 0],
        mean: vec![1.0, 0.0],
        std: vec![2.0, 1.0],
        layers: vec![
            Dense {
                weight: vec![1.0, 0.0, 0.0, -1.0],
                bias: vec![0.0, 0.5],
                activation: Activation::Relu,
            },
            Dense {
                weight: vec![2.0, 1.0],
                bias: vec![-1.0],
                activation: Activation::Identity,
            },
        ],
    })
    .unwrap()
}

#[test]
fn forward_matches_the_arithmetic_and_batches_agree() {
    let model = small();
    assert!(model.weights.check(3).is_ok());
    // x2 = 5 → (5-1)/2 = 2; x0 = -1 → -1. Hidden: relu(2) = 2, relu(1 + 0.5) = 1.5.
    let row = [-1.0, 9.0, 5.0];
    let logit = model.logit(&row);
    assert!((logit - (2.0 * 2.0 + 1.5 - 1.0)).abs() < 1e-12, "{logit}");
    // Missing inputs sit at their mean.
    let missing = [f64::NAN, 9.0, f64::NAN];
    assert!((model.logit(&missing) - (0.5 - 1.0)).abs() < 1e-12);
    let rows: Vec<&[f64]> = vec![&row, &missing, &row];
    let mut many = Vec::new();
    model.logits(&rows, &mut many);
    assert_eq!(
        many,
        vec![model.logit(&row), model.logit(&missing), model.logit(&row)]
    );
}

#[test]
fn gradient_times_input_credits_the_schema_features() {
    let model = small();
    let score = model.predict(&[-1.0, 9.0, 5.0]);
    // d logit / d x2n = 2 (unit 0 active), x2n = 2 → 4; x0n: unit 1 active,
    // d/dx0n = 1 × (-1) = -1, x0n = -1 → 1.
    assert!(
        (score.contributions[2] - 4.0).abs() < 1e-12,
        "{:?}",
        score.contributions
    );
    assert!((score.contributions[0] - 1.0).abs() < 1e-12);
    assert_eq!(score.contributions[1], 0.0);
    assert!((score.logit - 4.5).abs() < 1e-12);
}

#[test]
fn the_hand_written_path_is_candles_forward_and_autograd() {
    // Every activation, odd widths, some inputs missing.
    let mut seed: u64 = 7;
    let mut draw = || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    let mut layers = Vec::new();
    let mut width = 3;
    for (out, activation) in [
        (5, Activation::Tanh),
        (4, Activation::Gelu),
        (3, Activation::Sigmoid),
        (6, Activation::Relu),
        (1, Activation::Identity),
    ] {
        layers.push(Dense {
            weight: (0..out * width).map(|_| draw()).collect(),
            bias: (0..out).map(|_| draw()).collect(),
            activation,
        });
        width = out;
    }
    let model = Mlp::new(MlpWeights {
        inputs: vec![0, 2, 1],
        mean: vec![0.1, -0.2, 0.3],
        std: vec![1.5, 0.5, 2.0],
        layers,
    })
    .unwrap();
    let rows: Vec<[f64; 3]> = (0..40)
        .map(|i| {
            let x = [draw() * 3.0, draw() * 3.0, draw() * 3.0];
            if i % 5 == 0 {
                [x[0], f64::NAN, x[2]]
            } else {
                x
            }
        })
        .collect();
    let refs: Vec<&[f64]> = rows.iter().map(|r| &r[..]).collect();
    let mut batched = Vec::new();
    model.candle_logits(&refs, &mut batched);
    for (row, from_candle) in rows.iter().zip(batched) {
        let hand = model.predict(row);
        let autograd = model.predict_with_autograd(row);
        assert!(
            (hand.logit - from_candle).abs() < 1e-12,
            "{} {from_candle}",
            hand.logit
        );
        assert!((hand.logit - autograd.logit).abs() < 1e-12);
        // Candle's GELU gradient rounds 1/√(2π) to 0.398942 (a relative
        // 1e-7); the hand-written one is exact.
        for (h, a) in hand.contributions.iter().zip(autograd.contributions) {
            assert!((h - a).abs() < 1e-12 + 1e-5 * a.abs(), "{h} {a}");
        }
    }
}

#[test]
fn malformed_networks_are_refused() {
    let mut weights = small().weights;
    assert!(weights.check(2).is_err(), "feature 2 does not exist");
    weights.layers[1].bias.push(0.0);
    assert!(weights.check(3).is_err());
    let mut wide = small().weights;
    wide.layers[0].weight.pop();
    assert!(wide.check(3).is_err());
    let mut last = small().weights;
    last.layers[1].activation = Activation::Relu;
    assert!(last.check(3).is_err());
}
