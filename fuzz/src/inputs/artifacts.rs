//! Model artifacts: edited manifests and small weights with wild numbers.

use proptest::collection::vec;
use proptest::prelude::*;

use super::*;

/// A change to a manifest.
#[derive(Debug, Clone)]
pub enum ManifestEdit {
    /// Another learner name.
    Learner(String),
    /// Another family.
    Family(String),
    /// Drop feature (index mod count).
    DropFeature(usize),
    /// Rename feature (index mod count).
    RenameFeature(usize, String),
    /// A prior (index mod count).
    Prior(usize, Option<f64>),
    /// Band thresholds (medium, high).
    Bands(f64, f64),
    /// Calibration (slope, intercept).
    Calibration(f64, f64),
}

fn manifest_edit() -> impl Strategy<Value = ManifestEdit> {
    let learner = proptest::sample::select(vec![
        "logistic_regression",
        "gradient_boosted_trees",
        "logistic_plus_trees",
        "svm",
        "",
    ]);
    prop_oneof![
        learner.prop_map(|l| ManifestEdit::Learner(l.to_string())),
        text().prop_map(ManifestEdit::Family),
        any::<usize>().prop_map(ManifestEdit::DropFeature),
        (any::<usize>(), text()).prop_map(|(i, n)| ManifestEdit::RenameFeature(i, n)),
        (any::<usize>(), prop::option::of(number())).prop_map(|(i, p)| ManifestEdit::Prior(i, p)),
        (number(), number()).prop_map(|(m, h)| ManifestEdit::Bands(m, h)),
        (number(), number()).prop_map(|(s, i)| ManifestEdit::Calibration(s, i)),
    ]
}

/// A manifest with `edits` applied, as JSON (a non-finite number is written
/// as null, which the loader must refuse), then byte mutations.
pub fn manifest_json(
    manifest: &detour::models::Manifest,
    edits: &[ManifestEdit],
    mutations: &[Mutation],
) -> Vec<u8> {
    let mut m = manifest.clone();
    for edit in edits {
        let n = m.features.len().max(1);
        match edit {
            ManifestEdit::Learner(l) => m.learner = l.clone(),
            ManifestEdit::Family(f) => m.family = f.clone(),
            ManifestEdit::DropFeature(i) if !m.features.is_empty() => {
                m.features.remove(i % n);
            }
            ManifestEdit::RenameFeature(i, name) if !m.features.is_empty() => {
                m.features[i % n].name = name.clone()
            }
            ManifestEdit::Prior(i, p) if !m.features.is_empty() => m.features[i % n].prior = *p,
            ManifestEdit::Bands(medium, high) => {
                m.bands.medium = *medium;
                m.bands.high = *high;
            }
            ManifestEdit::Calibration(slope, intercept) => {
                m.calibration.slope = *slope;
                m.calibration.intercept = *intercept;
            }
            _ => {}
        }
    }
    let json = serde_json::to_vec(&m).expect("a manifest serialises");
    mutate(json, mutations)
}

/// Small weights of any learner for `width` features, with wild numbers and
/// node links, as the artifact stores them; and the learner's manifest name.
pub fn weights(width: usize) -> impl Strategy<Value = (String, Vec<u8>)> {
    use detour::models::artifact::{learner_name, weights_json};
    use detour::models::trees::Tree;
    use detour::models::{Learner, LinearTrees, LogisticWeights, TreeEnsemble};
    let n = prop_oneof![9 => Just(width), 1 => 0..width + 3];
    let logistic = (n, number())
        .prop_flat_map(|(n, intercept)| {
            (vec(number(), n), vec(number(), n), vec(number(), n)).prop_map(
                move |(mean, std, coefficients)| LogisticWeights {
                    mean,
                    std,
                    coefficients,
                    intercept,
                },
            )
        })
        .boxed();
    let tree = (1usize..8).prop_flat_map(move |nodes| {
        let link = prop_oneof![9 => 0..nodes as u32 + 2, 1 => any::<u32>()];
        let feature = prop_oneof![9 => 0..width as u32 + 1, 1 => any::<u32>()];
        (
            vec(feature, nodes),
            vec(number(), nodes),
            vec(link.clone(), nodes),
            vec(link.clone(), nodes),
            vec(link, nodes),
            vec(number(), nodes),
        )
            .prop_map(|(feature, threshold, left, right, missing, value)| Tree {
                feature,
                threshold,
                left,
                right,
                missing,
                value,
                categorical: Vec::new(),
            })
    });
    let ensemble = (number(), vec(tree, 0..3))
        .prop_map(|(b, t)| TreeEnsemble::new(b, t))
        .boxed();
    let learner = prop_oneof![
        logistic.clone().prop_map(Learner::Logistic),
        ensemble.clone().prop_map(Learner::Boosted),
        (logistic, ensemble)
            .prop_map(|(linear, trees)| Learner::LinearTrees(LinearTrees { linear, trees })),
    ];
    let some_mutations = prop_oneof![4 => Just(Vec::<Mutation>::new()), 1 => mutations()];
    (learner, some_mutations).prop_map(|(learner, mutations): (Learner, Vec<Mutation>)| {
        (
            learner_name(&learner).to_string(),
            mutate(weights_json(&learner), &mutations),
        )
    })
}

/// An artifact case: the family, the manifest's edits and mutations, the
/// weights, and rows to score if it loads.
#[derive(Debug, Clone)]
pub struct ArtifactCase {
    /// Index of the family in `RiskKind::ALL`.
    pub kind: u8,
    /// The learner name the weights were written as.
    pub learner: String,
    /// Edits to the shipped manifest.
    pub edits: Vec<ManifestEdit>,
    /// Byte mutations of the manifest's JSON.
    pub mutations: Vec<Mutation>,
    /// The weights file.
    pub weights: Vec<u8>,
    /// Feature rows to score (padded or cut to the schema).
    pub rows: Vec<Vec<f64>>,
}

/// Artifact cases for every family.
pub fn artifact() -> impl Strategy<Value = ArtifactCase> {
    use detour::schema::{RiskKind, schema_of};
    (0..RiskKind::ALL.len() as u8).prop_flat_map(|kind| {
        let width = schema_of(RiskKind::ALL[usize::from(kind)]).len();
        (
            Just(kind),
            weights(width),
            prop_oneof![3 => Just(Vec::new()), 2 => vec(manifest_edit(), 1..3)],
            prop_oneof![5 => Just(Vec::new()), 1 => mutations()],
            vec(vec(number(), 0..width + 1), 1..4),
        )
            .prop_map(
                |(kind, (learner, weights), edits, mutations, rows)| ArtifactCase {
                    kind,
                    learner,
                    edits,
                    mutations,
                    weights,
                    rows,
                },
            )
    })
}
