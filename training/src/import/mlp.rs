//! A feed-forward network: a small JSON description beside its weights in
//! safetensors — the file PyTorch's `state_dict` saves to with the
//! `safetensors` package — read with `candle-core`:
//!
//! ```json
//! {"format": "detour-mlp/1",
//!  "inputs": ["lane_failure_rate_7d", "..."],
//!  "weights": "mlp.safetensors",
//!  "normalize": {"mean": "norm.mean", "std": "norm.std"},
//!  "layers": [{"weight": "net.0.weight", "bias": "net.0.bias", "activation": "relu"},
//!             {"weight": "net.2.weight", "bias": "net.2.bias", "activation": "identity"}]}
//! ```
//!
//! `inputs` are Detour feature names, in the network's input order.
//! `weights` is relative to the description (default: its name with
//! `.safetensors`). `normalize` is optional: each input becomes
//! `(x - mean) / std`, and a missing input its mean. Each layer is PyTorch's
//! `Linear` (weight `out × in`, bias `out`, or `null` for none) followed by
//! `relu`, `tanh`, `sigmoid`, `gelu` (exact) or `identity`; the last has one
//! output, the log-odds (a final `sigmoid` is read as the link).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use detour::models::Learner;
use detour::models::artifact::sha256_hex;
use detour::models::mlp::{Activation, Dense, Mlp, MlpWeights};
use detour::schema::{RiskKind, schema_of};
use serde::Deserialize;

use super::{ImportError, Mapped, schema_columns};

/// The `format` a description must name.
pub const FORMAT: &str = "detour-mlp/1";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Description {
    format: String,
    inputs: Vec<String>,
    #[serde(default)]
    weights: Option<String>,
    #[serde(default)]
    normalize: Option<Normalize>,
    layers: Vec<Layer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Normalize {
    mean: String,
    std: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Layer {
    weight: String,
    #[serde(default)]
    bias: Option<String>,
    activation: Activation,
}

/// Reads the description at `path` (its text `text`) and the weights it
/// names, over `kind`'s schema; `names` replaces its input names.
pub fn read(
    path: &Path,
    text: &str,
    kind: RiskKind,
    names: Option<&[String]>,
) -> Result<Mapped, ImportError> {
    let invalid = ImportError::Invalid;
    let description: Description = serde_json::from_str(text)
        .map_err(|e| invalid(format!("not a {FORMAT} description: {e}")))?;
    if description.format != FORMAT {
        return Err(ImportError::Unsupported(format!(
            "format {:?}: this build reads {FORMAT:?}",
            description.format
        )));
    }
    let names: Vec<String> = match names {
        Some(given) => given.to_vec(),
        None => description.inputs.clone(),
    };
    if names.len() != description.inputs.len() {
        return Err(ImportError::Columns(format!(
            "--feature-names gives {} names, the network has {} inputs",
            names.len(),
            description.inputs.len()
        )));
    }
    let columns = schema_columns(&names, kind)?;
    let file = match &description.weights {
        Some(name) => path.with_file_name(name),
        None => path.with_extension("safetensors"),
    };
    let bytes = std::fs::read(&file)
        .map_err(|e| invalid(format!("{}: cannot read the weights: {e}", file.display())))?;
    let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
        .map_err(|e| invalid(format!("{}: not readable safetensors: {e}", file.display())))?;
    let n = names.len();
    let (mean, std) = match &description.normalize {
        Some(norm) => (
            vector(&tensors, &norm.mean, n)?,
            vector(&tensors, &norm.std, n)?,
        ),
        None => (vec![0.0; n], vec![1.0; n]),
    };
    let mut layers = Vec::with_capacity(description.layers.len());
    let mut width = n;
    for (l, layer) in description.layers.iter().enumerate() {
        let weight = tensor(&tensors, &layer.weight)?;
        let (out, into) = weight.dims2().map_err(|_| {
            invalid(format!(
                "layers[{l}]: {} is not a matrix (out × in)",
                layer.weight
            ))
        })?;
        if into != width {
            return Err(invalid(format!(
                "layers[{l}]: {} takes {into} inputs; the layer before gives {width}",
                layer.weight
            )));
        }
        let bias = match &layer.bias {
            Some(name) => vector(&tensors, name, out)?,
            None => vec![0.0; out],
        };
        layers.push(Dense {
            weight: values(&weight, &layer.weight)?,
            bias,
            activation: layer.activation,
        });
        width = out;
    }
    let weights = MlpWeights {
        inputs: columns.iter().map(|&c| c as u32).collect(),
        mean,
        std,
        layers,
    };
    weights.check(schema_of(kind).len()).map_err(invalid)?;
    let network = Mlp::new(weights).map_err(invalid)?;
    Ok(Mapped {
        learner: Learner::Mlp(network),
        columns,
        names,
        library: FORMAT.to_string(),
        parts: description.layers.len(),
        source_sha256: String::new(),
        weights_file: Some((file, sha256_hex(&bytes))),
    })
}

fn tensor(tensors: &HashMap<String, Tensor>, name: &str) -> Result<Tensor, ImportError> {
    tensors.get(name).cloned().ok_or_else(|| {
        let mut known: Vec<&str> = tensors.keys().map(String::as_str).collect();
        known.sort_unstable();
        ImportError::Invalid(format!(
            "no tensor {name:?} in the weights (they hold {})",
            known.join(", ")
        ))
    })
}

fn values(tensor: &Tensor, name: &str) -> Result<Vec<f64>, ImportError> {
    tensor
        .to_dtype(DType::F64)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f64>())
        .map_err(|e| ImportError::Invalid(format!("{name}: {e}")))
}

/// A tensor of `len` values (any shape of that many elements).
fn vector(
    tensors: &HashMap<String, Tensor>,
    name: &str,
    len: usize,
) -> Result<Vec<f64>, ImportError> {
    let data = values(&tensor(tensors, name)?, name)?;
    if data.len() != len {
        return Err(ImportError::Invalid(format!(
            "{name} has {} values; {len} expected",
            data.len()
        )));
    }
    Ok(data)
}
