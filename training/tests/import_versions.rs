//! `detour-train import`, writing: a model that does not match its library
//! leaves nothing behind; an imported version loads, is registered, serves
//! the library's probabilities (in process and, deployed in shadow, over the
//! wire), and with history is measured and calibrated on the same decisions
//! as `train`.

mod common;

use std::path::{Path, PathBuf};

use common::{byom_fixture as fixture, copy_dir};
use detour::models::load_version;
use detour::models::repository::read_state;
use detour::schema::{RiskKind, schema_of};
use detour_training::import::{
    self, Calibrate, ImportSettings, PARITY_TOLERANCE, read_expected, read_model,
};
use detour_training::replay::{DEFAULT_ANNOUNCED_HOURS, ReplaySettings};

const KIND: RiskKind = RiskKind::CarrierFailure;

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
