//! `detour-train import`, reading: models saved by the real LightGBM,
//! XGBoost and scikit-learn, and a network with its NumPy forward pass
//! (fixtures made by `training/examples/byom_fixtures.py` at the versions it
//! pins), reproduce the libraries' own probabilities on 1,000 held-out rows
//! each, missing values included; bad files are refused with the reason.
//! What an import writes and serves is in `import_versions.rs`.

mod common;

use common::{byom_fixture as fixture, byom_text as text};
use detour::models::Learner;
use detour::schema::{RiskKind, schema_of};
use detour_training::import::{
    self, Format, ImportError, PARITY_TOLERANCE, map_to_schema, parity, read_expected, read_model,
};

const KIND: RiskKind = RiskKind::CarrierFailure;

fn check_parity(model: &str, rows: &str, column: &str, format: Format) {
    let (found, mapped) = read_model(&fixture(model), None, KIND, None).unwrap();
    assert_eq!(found, format, "{model}: detected format");
    let expected = read_expected(&fixture(rows), column, KIND, &mapped).unwrap();
    let report = parity(&mapped, &expected);
    eprintln!("{model}: {report:?}");
    assert_eq!(report.rows, 1_000, "{model}");
    assert!(
        report.max_abs_diff <= PARITY_TOLERANCE,
        "{model}: max |Δp| {:e} at row {}",
        report.max_abs_diff,
        report.worst_row
    );
    if rows == "rows.csv" {
        assert!(report.rows_with_missing > 500, "{report:?}");
    } else {
        assert_eq!(report.rows_with_missing, 0, "{report:?}");
    }
    let schema = schema_of(KIND);
    assert_eq!(schema[mapped.columns[0]].name, "lane_failure_rate_7d");
    let Some(ensemble) = mapped.ensemble() else {
        // A network: its explanations are checked by mlp_matches_its_numpy_forward_pass.
        return;
    };
    // The trees read the schema's features the model named, nothing else.
    let used: Vec<usize> = ensemble.split_features().collect();
    assert!(used.iter().all(|f| mapped.columns.contains(f)));
    // Explanations: path contributions add up to the score, and credit only
    // features the model reads.
    for (row, _) in expected.iter().take(50) {
        let score = ensemble.predict(row.as_slice());
        let roots: f64 = ensemble.trees.iter().map(|t| t.value[0]).sum();
        let total: f64 = score.contributions.iter().sum();
        assert!(
            (ensemble.base_score + roots + total - score.logit).abs() < 1e-9,
            "{model}"
        );
        for (f, c) in score.contributions.iter().enumerate() {
            assert!(
                *c == 0.0 || mapped.columns.contains(&f),
                "{model}: feature {f}"
            );
        }
    }
}

#[test]
fn lightgbm_matches_its_own_predict_proba() {
    check_parity("lightgbm.txt", "rows.csv", "lightgbm", Format::Lightgbm);
}

#[test]
fn xgboost_matches_its_own_predict_proba() {
    check_parity("xgboost.json", "rows.csv", "xgboost", Format::Xgboost);
}

#[test]
fn sklearn_histogram_boosting_matches_its_own_predict_proba() {
    check_parity(
        "sklearn_hgb.json",
        "rows.csv",
        "sklearn_hgb",
        Format::Sklearn,
    );
}

#[test]
fn sklearn_classic_boosting_matches_its_own_predict_proba() {
    check_parity(
        "sklearn_gbc.json",
        "gbc_rows.csv",
        "sklearn_gbc",
        Format::Sklearn,
    );
}

#[test]
fn categorical_splits_match_lightgbm_and_xgboost() {
    for (model, column, format) in [
        ("lightgbm_categorical.txt", "lightgbm", Format::Lightgbm),
        ("xgboost_categorical.json", "xgboost", Format::Xgboost),
    ] {
        let (found, mapped) = read_model(&fixture(model), None, KIND, None).unwrap();
        assert_eq!(found, format);
        let ensemble = mapped.ensemble().unwrap();
        let categorical: usize = ensemble.trees.iter().map(|t| t.categorical.len()).sum();
        assert!(
            categorical > 10,
            "{model}: {categorical} categorical splits"
        );
        let expected =
            read_expected(&fixture("categorical_rows.csv"), column, KIND, &mapped).unwrap();
        let report = parity(&mapped, &expected);
        eprintln!("{model}: {report:?}");
        assert_eq!(report.rows, 1_000);
        assert!(report.rows_with_missing > 100, "{report:?}");
        assert!(
            report.max_abs_diff <= PARITY_TOLERANCE,
            "{model}: max |Δp| {:e} at row {}",
            report.max_abs_diff,
            report.worst_row
        );
    }
}

#[test]
fn mlp_matches_its_numpy_forward_pass() {
    check_parity("mlp.json", "rows.csv", "mlp", Format::Mlp);
    let (_, mapped) = read_model(&fixture("mlp.json"), None, KIND, None).unwrap();
    let Learner::Mlp(network) = &mapped.learner else {
        panic!("a network")
    };
    // Gradient × input: credits only the network's inputs, and sums to the
    // first-order change from the mean (checked against a finite difference
    // along the row's own direction).
    let expected = read_expected(&fixture("rows.csv"), "mlp", KIND, &mapped).unwrap();
    for (row, _) in expected.iter().take(20) {
        let score = network.predict(row.as_slice());
        assert!((score.logit - network.logit(row.as_slice())).abs() < 1e-12);
        for (f, c) in score.contributions.iter().enumerate() {
            assert!(*c == 0.0 || mapped.columns.contains(&f), "feature {f}");
        }
        assert!(score.contributions.iter().any(|c| *c != 0.0));
    }
}

#[test]
fn bad_networks_are_refused_with_the_reason() {
    let dir = common::scratch("import", "bad-mlp");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture("mlp.safetensors"), dir.join("mlp.safetensors")).unwrap();
    let description = text("mlp.json");
    let refused = |name: &str, edited: String| {
        let path = dir.join(name);
        std::fs::write(&path, edited).unwrap();
        let e = read_model(&path, None, KIND, None).unwrap_err();
        format!("{e:#}")
    };
    let e = refused(
        "a.json",
        description.replace("net.2.weight", "net.9.weight"),
    );
    assert!(e.contains("no tensor \"net.9.weight\""), "{e}");
    let e = refused(
        "b.json",
        description.replace("net.2.weight", "net.0.weight"),
    );
    assert!(e.contains("takes 8 inputs"), "{e}");
    let e = refused(
        "c.json",
        description.replacen("lane_failure_rate_7d", "weather", 1),
    );
    assert!(e.contains("weather"), "{e}");
    let e = refused("d.json", description.replace("\"tanh\"", "\"swish\""));
    assert!(e.contains("swish"), "{e}");
    let missing = description.replace("\"mlp.safetensors\"", "\"gone.safetensors\"");
    let e = refused("e.json", missing);
    assert!(e.contains("gone.safetensors"), "{e}");
    let truncated = std::fs::read(fixture("mlp.safetensors")).unwrap();
    std::fs::write(
        dir.join("cut.safetensors"),
        &truncated[..truncated.len() / 2],
    )
    .unwrap();
    let cut = description.replace("\"mlp.safetensors\"", "\"cut.safetensors\"");
    let e = refused("f.json", cut);
    assert!(e.contains("cut.safetensors"), "{e}");
}

#[test]
fn a_wrong_missing_value_rule_would_be_caught() {
    // The parity check can fail: send every missing value the other way.
    let imported = Format::Lightgbm.parse(&text("lightgbm.txt")).unwrap();
    let mut flipped = imported.clone();
    for tree in &mut flipped.trees {
        for node in &mut tree.nodes {
            if let import::layout::Node::Split { missing_left, .. } = node {
                *missing_left = !*missing_left;
            }
        }
    }
    let mapped = map_to_schema(&flipped, KIND, None).unwrap();
    let expected = read_expected(&fixture("rows.csv"), "lightgbm", KIND, &mapped).unwrap();
    assert!(parity(&mapped, &expected).max_abs_diff > 1e-3);
}

fn parse_error(format: Format, text: &str) -> ImportError {
    match format.parse(text) {
        Ok(imported) => map_to_schema(&imported, KIND, None).unwrap_err(),
        Err(e) => e,
    }
}

#[test]
fn bad_model_files_are_refused_with_the_reason() {
    let lgb = text("lightgbm.txt");
    let truncated = &lgb[..lgb.len() / 2];
    let e = parse_error(Format::Lightgbm, truncated);
    assert!(e.to_string().contains("truncated"), "{e}");

    let regression = lgb.replace("objective=binary sigmoid:1", "objective=regression");
    let e = parse_error(Format::Lightgbm, &regression);
    assert!(matches!(e, ImportError::Unsupported(_)), "{e}");
    assert!(e.to_string().contains("regression"), "{e}");

    let unknown = lgb.replacen("scheduled_transit_hours", "weather_index", 1);
    let e = parse_error(Format::Lightgbm, &unknown);
    assert!(matches!(e, ImportError::Columns(_)), "{e}");
    assert!(e.to_string().contains("weather_index"), "{e}");

    let out_of_range = lgb.replacen("split_feature=3 ", "split_feature=11 ", 1);
    assert_ne!(out_of_range, lgb);
    let e = parse_error(Format::Lightgbm, &out_of_range);
    assert!(e.to_string().contains("feature index 11"), "{e}");

    let xgb = text("xgboost.json");
    let multiclass = xgb.replace("binary:logistic", "multi:softprob");
    let e = parse_error(Format::Xgboost, &multiclass);
    assert!(matches!(e, ImportError::Unsupported(_)), "{e}");
    let e = parse_error(Format::Xgboost, &xgb[..xgb.len() - 100]);
    assert!(matches!(e, ImportError::Invalid(_)), "{e}");
    let far = xgb.replacen("\"split_indices\":[3,", "\"split_indices\":[40,", 1);
    assert_ne!(far, xgb);
    let e = parse_error(Format::Xgboost, &far);
    assert!(e.to_string().contains("feature index 40"), "{e}");

    let skl = text("sklearn_gbc.json");
    let e = parse_error(Format::Sklearn, &skl.replace("\"sigmoid\"", "\"identity\""));
    assert!(matches!(e, ImportError::Unsupported(_)), "{e}");
    let e = parse_error(Format::Sklearn, "{\"trees\": [{\"children_left\": [1");
    assert!(matches!(e, ImportError::Invalid(_)), "{e}");

    let imported = Format::Xgboost.parse(&text("xgboost.json")).unwrap();
    let doubled: Vec<String> = vec!["lane_failure_rate_7d".into(); imported.columns.len()];
    let e = map_to_schema(&imported, KIND, Some(&doubled)).unwrap_err();
    assert!(e.to_string().contains("names two inputs"), "{e}");
    let e = map_to_schema(&imported, KIND, Some(&doubled[..3])).unwrap_err();
    assert!(e.to_string().contains("3 names"), "{e}");
}

#[test]
fn xgboost_after_early_stopping_keeps_the_rounds_up_to_the_best() {
    let xgb = text("xgboost.json");
    let stopped = xgb.replacen(
        "\"attributes\":{}",
        "\"attributes\":{\"best_iteration\":\"19\"}",
        1,
    );
    assert_ne!(stopped, xgb);
    assert_eq!(Format::Xgboost.parse(&stopped).unwrap().trees.len(), 20);
    assert_eq!(Format::Xgboost.parse(&xgb).unwrap().trees.len(), 40);
    // As Booster.predict: every round.
    let all = detour_training::import::xgboost::parse(&stopped, true).unwrap();
    assert_eq!(all.trees.len(), 40);
    let huge = xgb.replacen(
        "\"attributes\":{}",
        "\"attributes\":{\"best_iteration\":\"18446744073709551615\"}",
        1,
    );
    assert!(Format::Xgboost.parse(&huge).is_err());
    let beyond = xgb.replacen(
        "\"attributes\":{}",
        "\"attributes\":{\"best_iteration\":\"40\"}",
        1,
    );
    assert!(Format::Xgboost.parse(&beyond).is_err());
}
