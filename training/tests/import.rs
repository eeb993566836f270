//! `detour-train import`: models saved by the real LightGBM, XGBoost and
//! scikit-learn (fixtures made by `training/examples/byom_fixtures.py` at the
//! versions it pins) reproduce the libraries' own `predict_proba` on 1,000
//! held-out rows each, missing values included; bad files are refused with
//! the reason and leave nothing behind; an import with history gets a
//! measured, loadable, registered version.

mod common;

use std::path::{Path, PathBuf};

use detour::models::repository::read_state;
use detour::models::{Learner, load_version};
use detour::schema::{RiskKind, schema_of};
use detour_training::import::{
    self, Calibrate, Format, ImportError, ImportSettings, PARITY_TOLERANCE, map_to_schema, parity,
    read_expected, read_model,
};
use detour_training::replay::{DEFAULT_ANNOUNCED_HOURS, ReplaySettings};

const KIND: RiskKind = RiskKind::CarrierFailure;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/byom")
        .join(name)
}

fn text(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap()
}

/// Imports `model` and checks it against `column` of `rows`.
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

fn settings(model: &str, out: &Path) -> ImportSettings {
    ImportSettings {
        model: fixture(model),
        format: None,
        family: KIND,
        feature_names: None,
        expected: Some(fixture("rows.csv")),
        expected_column: "lightgbm".into(),
        tolerance: PARITY_TOLERANCE,
        all_rounds: false,
        data: None,
        replay: None,
        calibrate: Calibrate::None,
        out: out.to_path_buf(),
        version: None,
        activate: false,
    }
}

#[test]
fn a_model_that_does_not_match_the_library_writes_nothing() {
    let dir = common::scratch("import", "mismatch");
    let repo = dir.join("models");
    // XGBoost's model checked against LightGBM's probabilities.
    let mut wrong = settings("xgboost.json", &repo);
    wrong.version = Some("xgb-wrong".into());
    let e = import::run(&wrong).unwrap_err();
    assert!(format!("{e:#}").contains("nothing written"), "{e:#}");
    let family = repo.join(KIND.name());
    let left: Vec<_> = std::fs::read_dir(&family)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn an_imported_version_loads_is_registered_and_serves_the_library_probabilities() {
    let dir = common::scratch("import", "version");
    let repo = dir.join("models");
    let summary = import::run(&settings("lightgbm.txt", &repo)).unwrap();
    assert!(summary.version.starts_with("lgbm-"), "{}", summary.version);
    assert!(
        summary.activated,
        "the repository's first version is active"
    );
    let model = load_version(&summary.dir, KIND, schema_of(KIND)).unwrap();
    assert_eq!(model.manifest.training["imported_from"]["parts"], 40);
    assert!(summary.parity.unwrap().max_abs_diff <= PARITY_TOLERANCE);
    let state = read_state(&repo, KIND).unwrap().unwrap();
    assert_eq!(state.active.as_deref(), Some(summary.version.as_str()));
    // Served with priors off and no calibration: the library's own numbers.
    let (_, mapped) = read_model(&fixture("lightgbm.txt"), None, KIND, None).unwrap();
    let expected = read_expected(&fixture("rows.csv"), "lightgbm", KIND, &mapped).unwrap();
    for (row, p) in expected.iter().take(200) {
        let served = model.predict(row).probability;
        assert!((served - p).abs() <= PARITY_TOLERANCE, "{served} vs {p}");
    }
    // Importing the same file again leaves the version as it is.
    let again = import::run(&settings("lightgbm.txt", &repo)).unwrap();
    assert_eq!(again.version, summary.version);
}

#[test]
fn an_import_with_history_is_measured_and_calibrated_on_the_same_decisions_as_train() {
    let dir = common::scratch("import", "history");
    let data = dir.join("sim");
    common::simulate(5, "2026-03-02T00:00:00Z", 14, 600.0, &data);
    let repo = dir.join("models");
    let mut with_history = settings("xgboost.json", &repo);
    with_history.expected = None;
    with_history.data = Some(data);
    with_history.replay = Some(ReplaySettings::training(
        15.0,
        8.0,
        None,
        None,
        DEFAULT_ANNOUNCED_HOURS,
        true,
    ));
    with_history.calibrate = Calibrate::Platt;
    let summary = import::run(&with_history).unwrap();
    let test = summary.test.expect("measured");
    assert!(test.rows > 100, "{test:?}");
    let model = load_version(&summary.dir, KIND, schema_of(KIND)).unwrap();
    let calibration = model.manifest.calibration;
    assert!(
        (calibration.slope, calibration.intercept) != (1.0, 0.0),
        "Platt scaling was fitted: {calibration:?}"
    );
    for file in ["report.json", "report.md", "reliability.svg", "golden.json"] {
        assert!(summary.dir.join(file).is_file(), "{file}");
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(summary.dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["learners"][0]["learner"], "imported_xgboost");

    // Isotonic: the same model, another version, served through its map.
    let mut isotonic = with_history.clone();
    isotonic.calibrate = Calibrate::Isotonic;
    let mapped_version = import::run(&isotonic).unwrap();
    assert_ne!(mapped_version.version, summary.version);
    let model = load_version(&mapped_version.dir, KIND, schema_of(KIND)).unwrap();
    let map = model.manifest.isotonic.clone().expect("an isotonic map");
    assert!(map.x.len() >= 2);
    assert_eq!(
        (
            model.manifest.calibration.slope,
            model.manifest.calibration.intercept
        ),
        (1.0, 0.0)
    );
    let (_, mapped) = read_model(&fixture("xgboost.json"), None, KIND, None).unwrap();
    let expected = read_expected(&fixture("rows.csv"), "xgboost", KIND, &mapped).unwrap();
    for (row, _) in expected.iter().take(50) {
        let raw = mapped.learner.raw_score(row.as_slice()).logit;
        let served = model.predict(row).probability;
        assert!((served - map.apply(detour::models::sigmoid(raw))).abs() < 1e-12);
    }
}

/// A copy of the shipped model repository, for a server to change.
fn shipped_copy(dir: &Path) -> PathBuf {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let copy = dir.join("serving");
    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
    copy_dir(&shipped, &copy);
    copy
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_serves_an_imported_version_in_shadow_with_the_library_probabilities() {
    use detour::pb;
    use detour::pb::model_admin_client::ModelAdminClient;

    const TOKEN: &str = "import-test-token-0123456789";
    let dir = common::scratch("import", "served");
    let imported = import::run(&settings("lightgbm.txt", &dir.join("imported"))).unwrap();
    let config = detour::config::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        models: shipped_copy(&dir),
        admin_token: Some(TOKEN.into()),
        ..detour::config::Config::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(detour::app::run(config, listener, async move {
        let _ = stopped.await;
    }));
    let channel = loop {
        match tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .unwrap()
            .connect()
            .await
        {
            Ok(channel) => break channel,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    };
    let mut admin =
        ModelAdminClient::with_interceptor(channel, |mut request: tonic::Request<()>| {
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
            Ok(request)
        });
    let deployed = admin
        .deploy_model(pb::DeployModelRequest {
            directory: imported.dir.display().to_string(),
            shadow: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deployed.version, imported.version);

    // The held-out rows, as a data scientist would send them: named values,
    // missing ones left out.
    let mut reader = csv::Reader::from_path(fixture("rows.csv")).unwrap();
    let header = reader.headers().unwrap().clone();
    let mut rows = Vec::new();
    let mut expected = Vec::new();
    for record in reader.records() {
        let record = record.unwrap();
        let mut features = std::collections::HashMap::new();
        for (name, cell) in header.iter().zip(record.iter()).take(8) {
            if !cell.is_empty() {
                features.insert(name.to_string(), cell.parse::<f64>().unwrap());
            }
        }
        rows.push(pb::FeatureRow { features });
        expected.push(
            record[header.iter().position(|h| h == "lightgbm").unwrap()]
                .parse::<f64>()
                .unwrap(),
        );
    }
    let request = |version: &str, rows: Vec<pb::FeatureRow>| pb::ScoreFeaturesRequest {
        family: KIND.name().into(),
        version: version.into(),
        rows,
    };
    let served = admin
        .score_features(request(&imported.version, rows.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(served.model_version, imported.version);
    assert_eq!(served.scores.len(), 1_000);
    let worst = served
        .scores
        .iter()
        .zip(&expected)
        .map(|(s, p)| (s.probability - p).abs())
        .fold(0.0, f64::max);
    assert!(
        worst <= PARITY_TOLERANCE,
        "max |Δp| over the wire {worst:e}"
    );
    assert!(served.scores.iter().all(|s| !s.factors.is_empty()));
    // The active version answers when none is named, and differently.
    let active = admin
        .score_features(request("", rows[..10].to_vec()))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(active.model_version, imported.version);

    // Bad input: named, and nothing else is refused.
    let mut unknown = rows[0].clone();
    unknown.features.insert("weather_index".into(), 1.0);
    let status = admin
        .score_features(request("", vec![rows[1].clone(), unknown]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status
            .message()
            .contains("rows[1].features[\"weather_index\"]"),
        "{status:?}"
    );
    let status = admin
        .score_features(request("lgbm-nowhere", rows[..1].to_vec()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    let status = admin
        .score_features(request("", Vec::new()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
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
