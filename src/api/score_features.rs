//! `ModelAdmin/ScoreFeatures`: rows of named feature values, as
//! `detour-train dataset` writes them, scored by a version this server
//! serves — what a data scientist compares with their library's own
//! `predict_proba`. Pure: the snapshot in, the answer out; nothing recorded.

use super::ApiError;
use super::convert::{wire_band, wire_factor};
use crate::models::LoadedModel;
use crate::pb;
use crate::registry::ModelSnapshot;
use crate::schema::{FeatureVector, RiskKind, schema_of};
use crate::scoring::top_factors;

/// Most rows one call may carry (as `ScoreBatch`'s items).
pub const MAX_FEATURE_ROWS: usize = super::scoring::MAX_BATCH_ITEMS;

/// The model `version` names in `kind`'s route: the active one when empty,
/// or the shadow or canary candidate.
fn serving<'a>(
    snapshot: &'a ModelSnapshot,
    kind: RiskKind,
    version: &str,
) -> Result<&'a LoadedModel, ApiError> {
    let route = snapshot.route(kind);
    if version.is_empty() || route.active.manifest.version == version {
        return Ok(&route.active);
    }
    match &route.candidate {
        Some(candidate) if candidate.model.manifest.version == version => Ok(&candidate.model),
        _ => Err(ApiError::NotFound(format!(
            "{} version {version} is neither active nor in shadow or canary on this server; \
             deploy it with --shadow first",
            kind.name()
        ))),
    }
}

/// One row as the family's feature vector: named values in, the rest
/// missing. Unknown names and infinite values are refused, named.
fn vector(kind: RiskKind, row: &pb::FeatureRow, at: usize) -> Result<FeatureVector, ApiError> {
    let schema = schema_of(kind);
    let mut values = [f64::NAN; crate::schema::MAX_FEATURES];
    for (name, &value) in &row.features {
        let field = || format!("rows[{at}].features[{name:?}]");
        let i = schema.iter().position(|f| f.name == name).ok_or_else(|| {
            ApiError::invalid(field(), format!("{} computes no such feature", kind.name()))
        })?;
        if value.is_infinite() {
            return Err(ApiError::invalid(
                field(),
                "must be finite (or NaN: missing)",
            ));
        }
        values[i] = value;
    }
    Ok(FeatureVector::from_slice(&values[..schema.len()]))
}

/// Scores every row of `request` with the version it names.
pub fn score_features(
    snapshot: &ModelSnapshot,
    kind: RiskKind,
    request: &pb::ScoreFeaturesRequest,
) -> Result<pb::ScoreFeaturesResponse, ApiError> {
    if request.rows.is_empty() {
        return Err(ApiError::invalid("rows", "at least one row"));
    }
    if request.rows.len() > MAX_FEATURE_ROWS {
        return Err(ApiError::invalid(
            "rows",
            format!(
                "{} rows; at most {MAX_FEATURE_ROWS} per call",
                request.rows.len()
            ),
        ));
    }
    let model = serving(snapshot, kind, &request.version)?;
    let scores = request
        .rows
        .iter()
        .enumerate()
        .map(|(at, row)| {
            let features = vector(kind, row, at)?;
            let prediction = model.predict(&features);
            Ok(pb::ScoredRow {
                probability: prediction.probability,
                band: wire_band(model.band(prediction.probability)),
                factors: top_factors(kind, &features, &prediction)
                    .iter()
                    .map(wire_factor)
                    .collect(),
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(pb::ScoreFeaturesResponse {
        model_name: model.manifest.name.clone(),
        model_version: model.manifest.version.clone(),
        scores,
    })
}
