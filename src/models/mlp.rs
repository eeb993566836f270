//! A feed-forward network served with `candle-core` on the CPU: inputs
//! gathered from the family's schema, normalised (a missing input takes its
//! mean, 0 once normalised), then dense layers with their activations; the
//! last layer's one output is the log-odds. Weights are kept as `f64`
//! tensors, so a network trained in `f32` is served to `f64` precision.
//!
//! Batches run the network with candle, once, one matrix product per layer
//! for every row. A single row (a unary score, its explanation) is walked by
//! hand in plain `f64` loops instead: candle dispatches every matrix product
//! of more than one thread to rayon, reading an environment variable each
//! time, which cost about 90 µs a row here against 3 µs by hand (the tests
//! hold the two paths to each other within 1e-12, and the hand-written
//! gradient to candle's autograd within 1e-12, or 1e-5 relative through a
//! GELU, whose gradient candle takes with 1/√(2π) rounded to 0.398942).
//!
//! Explanations are gradient × input against the normalisation mean: each
//! input's contribution is the log-odds' gradient in normalised units times
//! the normalised value (0 for an input at its mean, or missing).

use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::logistic::RawScore;
use crate::schema::MAX_FEATURES;

/// Rows from which a batch runs through candle (below, by hand; see the
/// module's notes).
pub const CANDLE_ROWS: usize = 32;

/// Largest number of units in any layer, and of inputs.
pub const MAX_UNITS: usize = 4096;

/// An activation after a dense layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// None (the last layer's, whose output is the log-odds).
    Identity,
    /// max(0, x).
    Relu,
    /// The hyperbolic tangent.
    Tanh,
    /// 1 / (1 + e^-x).
    Sigmoid,
    /// The exact (erf) GELU, PyTorch's default.
    Gelu,
}

/// One dense layer: `out = activation(input · weightᵀ + bias)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dense {
    /// Outputs × inputs, row-major, as PyTorch's `Linear.weight`.
    pub weight: Vec<f64>,
    /// One per output.
    pub bias: Vec<f64>,
    /// Applied to every output.
    pub activation: Activation,
}

/// An activation's value at `z` (the hand-written path; candle's own
/// functions for batches).
fn activate(activation: Activation, z: f64) -> f64 {
    match activation {
        Activation::Identity => z,
        Activation::Relu => z.max(0.0),
        Activation::Tanh => z.tanh(),
        Activation::Sigmoid => 1.0 / (1.0 + (-z).exp()),
        Activation::Gelu => z * normal_cdf(z),
    }
}

/// An activation's derivative at `z`.
fn slope(activation: Activation, z: f64) -> f64 {
    match activation {
        Activation::Identity => 1.0,
        Activation::Relu => {
            if z > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Activation::Tanh => 1.0 - z.tanh().powi(2),
        Activation::Sigmoid => {
            let s = 1.0 / (1.0 + (-z).exp());
            s * (1.0 - s)
        }
        Activation::Gelu => {
            normal_cdf(z) + z * (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt()
        }
    }
}

/// The standard normal distribution function.
fn normal_cdf(z: f64) -> f64 {
    0.5 * (1.0 + puruspe::erf(z / std::f64::consts::SQRT_2))
}

/// A network as an artifact stores it (`weights.json` of learner `mlp`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpWeights {
    /// The schema index each network input reads, in the network's order.
    pub inputs: Vec<u32>,
    /// Per input: subtracted first; a missing input takes this value.
    pub mean: Vec<f64>,
    /// Per input: divides after the mean is subtracted.
    pub std: Vec<f64>,
    /// In order, from the inputs to the one output (the log-odds).
    pub layers: Vec<Dense>,
}

/// A network ready to serve: its weights and their tensors.
#[derive(Debug, Clone)]
pub struct Mlp {
    /// What the artifact stores.
    pub weights: MlpWeights,
    /// Per layer: the weight transposed (inputs × outputs) and the bias
    /// (1 × outputs), on the CPU.
    tensors: Vec<(Tensor, Tensor)>,
}

impl PartialEq for Mlp {
    fn eq(&self, other: &Self) -> bool {
        self.weights == other.weights
    }
}

impl MlpWeights {
    /// Checks the shapes chain from the inputs to one output and every number
    /// is finite, for a schema of `features`.
    pub fn check(&self, features: usize) -> Result<(), String> {
        let n = self.inputs.len();
        if n == 0 || n > MAX_UNITS {
            return Err(format!("{n} inputs; 1 to {MAX_UNITS} are supported"));
        }
        if self.mean.len() != n || self.std.len() != n {
            return Err("mean and std must have one value per input".into());
        }
        if let Some(i) = self.inputs.iter().position(|&f| f as usize >= features) {
            return Err(format!(
                "input {i} reads feature index {}; the schema has {features}",
                self.inputs[i]
            ));
        }
        if let Some(i) = (0..n)
            .find(|&i| !(self.mean[i].is_finite() && self.std[i].is_finite() && self.std[i] > 0.0))
        {
            return Err(format!(
                "input {i}: mean must be finite and std a positive number"
            ));
        }
        if self.layers.is_empty() {
            return Err("no layers".into());
        }
        let mut width = n;
        for (l, layer) in self.layers.iter().enumerate() {
            let out = layer.bias.len();
            if out == 0 || out > MAX_UNITS || layer.weight.len() != out * width {
                return Err(format!(
                    "layer {l}: weight has {} values, bias {out}; expected {out} × {width}",
                    layer.weight.len()
                ));
            }
            if layer
                .weight
                .iter()
                .chain(&layer.bias)
                .any(|v| !super::within_log_odds(*v))
            {
                return Err(format!(
                    "layer {l}: a weight or bias is not a finite number within ±{:e}",
                    super::MAX_LOG_ODDS
                ));
            }
            width = out;
        }
        let last = self.layers.last().expect("not empty");
        if width != 1 {
            return Err(format!(
                "the last layer has {width} outputs; one (the log-odds) is needed"
            ));
        }
        if !matches!(last.activation, Activation::Identity | Activation::Sigmoid) {
            return Err(
                "the last layer's activation must be identity (its output is the log-odds) \
                 or sigmoid (its input is)"
                    .into(),
            );
        }
        Ok(())
    }
}

impl Mlp {
    /// A network from checked weights (see [`MlpWeights::check`]).
    pub fn new(weights: MlpWeights) -> Result<Self, String> {
        let mut tensors = Vec::with_capacity(weights.layers.len());
        let mut width = weights.inputs.len();
        for layer in &weights.layers {
            let out = layer.bias.len();
            let tensor = |data: &[f64], shape: (usize, usize)| {
                Tensor::from_slice(data, shape, &Device::Cpu).map_err(|e| e.to_string())
            };
            let weight = tensor(&layer.weight, (out, width))?
                .t()
                .and_then(|t| t.contiguous())
                .map_err(|e| e.to_string())?;
            tensors.push((weight, tensor(&layer.bias, (1, out))?));
            width = out;
        }
        Ok(Mlp { weights, tensors })
    }

    /// The normalised inputs of `rows`, row-major.
    fn inputs(&self, rows: &[&[f64]]) -> Vec<f64> {
        let w = &self.weights;
        let mut data = Vec::with_capacity(rows.len() * w.inputs.len());
        for row in rows {
            for (i, &feature) in w.inputs.iter().enumerate() {
                let value = row[feature as usize];
                data.push(if value.is_nan() {
                    0.0
                } else {
                    (value - w.mean[i]) / w.std[i]
                });
            }
        }
        data
    }

    /// The log-odds of a batch of rows (`rows × inputs`), one product per layer.
    fn forward(&self, input: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = input.clone();
        let last = self.tensors.len() - 1;
        for (l, ((weight, bias), layer)) in
            self.tensors.iter().zip(&self.weights.layers).enumerate()
        {
            h = h.matmul(weight)?.broadcast_add(bias)?;
            // The last layer's sigmoid is the link: its input is the log-odds.
            h = match layer.activation {
                Activation::Identity => h,
                Activation::Sigmoid if l == last => h,
                Activation::Relu => h.relu()?,
                Activation::Tanh => h.tanh()?,
                Activation::Sigmoid => (h.neg()?.exp()? + 1.0)?.recip()?,
                Activation::Gelu => h.gelu_erf()?,
            };
        }
        Ok(h)
    }

    /// Log-odds of many rows: from [`CANDLE_ROWS`] rows, the network run
    /// once for all of them with candle; fewer, one by one by hand.
    pub fn logits(&self, rows: &[&[f64]], out: &mut Vec<f64>) {
        out.clear();
        if rows.len() < CANDLE_ROWS {
            out.extend(rows.iter().map(|row| self.logit(row)));
            return;
        }
        self.candle_logits(rows, out);
    }

    /// Log-odds of many rows with candle, one matrix product per layer.
    pub fn candle_logits(&self, rows: &[&[f64]], out: &mut Vec<f64>) {
        out.clear();
        if rows.is_empty() {
            return;
        }
        let n = self.weights.inputs.len();
        let logits = Tensor::from_vec(self.inputs(rows), (rows.len(), n), &Device::Cpu)
            .and_then(|x| self.forward(&x))
            .and_then(|y| y.flatten_all()?.to_vec1::<f64>());
        match logits {
            Ok(logits) => out.extend(logits),
            // Shapes were checked at load; should candle fail anyway, the
            // answer is "no score", never a panic.
            Err(_) => out.resize(rows.len(), f64::NAN),
        }
    }

    /// Log-odds only, for one row (by hand: see the module's notes).
    pub fn logit(&self, row: &[f64]) -> f64 {
        let mut layers = Vec::with_capacity(self.weights.layers.len() + 1);
        self.walk(row, &mut layers)
    }

    /// Forward pass of one row by hand: `layers` receives the normalised
    /// inputs, then each layer's pre-activation; returns the log-odds.
    fn walk(&self, row: &[f64], layers: &mut Vec<Vec<f64>>) -> f64 {
        layers.clear();
        layers.push(self.inputs(&[row]));
        let mut h = layers[0].clone();
        let last = self.weights.layers.len() - 1;
        for (l, layer) in self.weights.layers.iter().enumerate() {
            let width = h.len();
            let z: Vec<f64> = layer
                .bias
                .iter()
                .enumerate()
                .map(|(o, b)| {
                    let weights = &layer.weight[o * width..(o + 1) * width];
                    weights.iter().zip(&h).map(|(w, x)| w * x).sum::<f64>() + b
                })
                .collect();
            h = if l == last {
                z.clone()
            } else {
                z.iter().map(|&v| activate(layer.activation, v)).collect()
            };
            layers.push(z);
        }
        h[0]
    }

    /// Log-odds and gradient × input contributions for one row, by hand.
    pub fn predict(&self, row: &[f64]) -> RawScore {
        let mut contributions = [0.0; MAX_FEATURES];
        let mut layers = Vec::with_capacity(self.weights.layers.len() + 1);
        let logit = self.walk(row, &mut layers);
        // Back from d logit / d logit = 1 through each layer to the inputs.
        let last = self.weights.layers.len() - 1;
        let mut gradient = vec![1.0];
        for (l, layer) in self.weights.layers.iter().enumerate().rev() {
            let z = &layers[l + 1];
            let dz: Vec<f64> = if l == last {
                gradient
            } else {
                gradient
                    .iter()
                    .zip(z)
                    .map(|(g, &v)| g * slope(layer.activation, v))
                    .collect()
            };
            let width = layers[l].len();
            let mut back = vec![0.0; width];
            for (o, d) in dz.iter().enumerate() {
                let weights = &layer.weight[o * width..(o + 1) * width];
                for (b, w) in back.iter_mut().zip(weights) {
                    *b += d * w;
                }
            }
            gradient = back;
        }
        for ((&feature, g), x) in self.weights.inputs.iter().zip(&gradient).zip(&layers[0]) {
            contributions[feature as usize] += g * x;
        }
        RawScore {
            logit,
            contributions,
        }
    }

    /// Log-odds and gradient × input contributions for one row through
    /// candle's autograd: the reference [`Self::predict`] is held to.
    pub fn predict_with_autograd(&self, row: &[f64]) -> RawScore {
        let mut contributions = [0.0; MAX_FEATURES];
        let n = self.weights.inputs.len();
        let inputs = self.inputs(&[row]);
        let explained = (|| -> candle_core::Result<(f64, Vec<f64>)> {
            let x = Var::from_tensor(&Tensor::from_slice(&inputs, (1, n), &Device::Cpu)?)?;
            let y = self.forward(x.as_tensor())?;
            let logit = y.flatten_all()?.to_vec1::<f64>()?[0];
            let grads = y.sum_all()?.backward()?;
            let gradient = grads
                .get(x.as_tensor())
                .map(|g| g.flatten_all().and_then(|g| g.to_vec1::<f64>()))
                .transpose()?
                .unwrap_or_else(|| vec![0.0; n]);
            Ok((logit, gradient))
        })();
        let Ok((logit, gradient)) = explained else {
            return RawScore {
                logit: f64::NAN,
                contributions,
            };
        };
        for ((&feature, g), x) in self.weights.inputs.iter().zip(gradient).zip(inputs) {
            contributions[feature as usize] += g * x;
        }
        RawScore {
            logit,
            contributions,
        }
    }
}

#[cfg(test)]
mod tests;
