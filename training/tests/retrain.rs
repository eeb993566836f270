//! A data scientist's loop end to end: simulate a history, train on it, start
//! the real server on the new artifacts and see its answers change; and a
//! tampered artifact is refused before the server listens.

mod common;

use std::path::{Path, PathBuf};

use detour::config::Config;
use detour::pb;

fn scratch(name: &str) -> PathBuf {
    common::scratch("retrain", name)
}

fn train_small(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    let models = dir.join("models");
    common::simulate(11, "2026-06-01T00:00:00Z", 12, 2000.0, &data);
    let trained = common::train_quick(&data, &models, "retrained-test");
    assert_eq!(
        trained.len(),
        3,
        "all three families train on a simulated history"
    );
    models
}

async fn score_with(models: PathBuf) -> pb::RiskScore {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        models,
        ..Config::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(detour::app::run(config, listener, async move {
        let _ = stopped.await;
    }));
    let mut client = loop {
        match pb::risk_scoring_client::RiskScoringClient::connect(format!("http://{address}")).await
        {
            Ok(client) => break client,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    };
    let answer = client
        .score_shipment(pb::ScoreShipmentRequest {
            shipment: Some(pb::Shipment {
                shipment_id: "S-1".into(),
                carrier: "XPO".into(),
                origin: "ATL".into(),
                destination: "JFK".into(),
                scheduled_departure: "2026-06-12T08:00:00Z"
                    .parse::<prost_types::Timestamp>()
                    .ok(),
                scheduled_arrival: "2026-06-13T11:00:00Z"
                    .parse::<prost_types::Timestamp>()
                    .ok(),
                ..Default::default()
            }),
            as_of: None,
        })
        .await
        .unwrap()
        .into_inner();
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    answer
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retrained_artifact_loads_in_the_server_and_changes_its_answers() {
    let models = train_small(&scratch("loads"));
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models");
    let before = score_with(shipped).await;
    let after = score_with(models).await;
    assert_eq!(after.model_version, "retrained-test");
    assert_ne!(before.model_version, after.model_version);
    assert!(
        (before.probability - after.probability).abs() > 1e-6,
        "same answer from different models: {}",
        after.probability
    );
    let shipped_dir = detour::models::repository::active_dir(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models"),
        detour::schema::RiskKind::CarrierFailure,
    )
    .unwrap();
    for file in ["report.md", "report.json", "reliability.svg"] {
        assert!(
            shipped_dir.join(file).exists(),
            "{file} ships beside the artifact"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_artifact_is_refused_before_listening() {
    let models = train_small(&scratch("tampered"));
    let weights = models.join("order_fallout/retrained-test/weights.json");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 2;
    bytes[last] = if bytes[last] == b'1' { b'2' } else { b'1' };
    std::fs::write(&weights, bytes).unwrap();
    let config = Config {
        models,
        ..Config::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = detour::app::run(config, listener, std::future::pending())
        .await
        .expect_err("a bad checksum must stop the start");
    assert!(error.to_string().contains("checksum"), "{error}");
}
