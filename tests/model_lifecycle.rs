//! The model lifecycle over the wire, on one server with the directory
//! backend: deploy → shadow → canary → promote → rollback, the comparison on
//! ingested outcomes, auto-promotion, and the state surviving a restart
//! (what is refused is in `model_gate.rs`).

mod common;

use std::time::{Duration, Instant};

use common::lifecycle::{
    Admin, TOKEN, active_version, answering_version, files_of, repo_copy, variant,
};
use common::{TestServer, shipment, shipment_event};
use detour::pb;
use detour::schema::RiskKind;
use tonic::Code;

const CARRIER: RiskKind = RiskKind::CarrierFailure;

/// Reports every leg in `ids` delivered 3 hours late (failed) or early.
async fn report_outcomes(server: &TestServer, ids: &[String], failed: bool) {
    let events = ids
        .iter()
        .map(|id| {
            shipment_event(
                &format!("outcome-{id}"),
                shipment(id, "UPS", "ATL", "JFK", 21, Some(failed)),
            )
        })
        .collect();
    server.ingest_all(events).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_goes_from_deploy_through_shadow_and_canary_to_promote_and_rollback() {
    let repo = repo_copy("walk");
    let v1 = active_version(&repo, CARRIER);
    let v2_dir = variant(&repo, CARRIER, "v2-walk", 1.0, |_| {});
    let server = common::lifecycle::server(&repo, Some(TOKEN)).await;
    let mut admin = Admin::new(server.channel().await, Some(TOKEN));
    let mut scoring = server.scoring().await;

    // Deployed: loaded and listed, but no traffic.
    let deployed = admin
        .deploy_dir(&v2_dir)
        .await
        .expect("a good version deploys");
    assert_eq!(
        (deployed.family.as_str(), deployed.version.as_str()),
        ("carrier_failure", "v2-walk")
    );
    let family = admin.family(CARRIER).await;
    let listed = family
        .versions
        .iter()
        .find(|v| v.version == "v2-walk")
        .unwrap();
    assert_eq!(listed.state, "loaded");
    assert_eq!(listed.deployed_by, "lifecycle-test");
    assert!(listed.metrics.contains_key("roc_auc"));
    let before = answering_version(&mut scoring, "idle").await;
    assert_eq!(before.model_version, v1);

    // Shadow: callers get the active answer; both scores are kept.
    admin.shadow(CARRIER, "v2-walk", None).await.unwrap();
    let ids: Vec<String> = (0..20).map(|i| format!("shadow-{i}")).collect();
    for id in &ids {
        let answer = answering_version(&mut scoring, id).await;
        assert_eq!(answer.model_version, v1, "a shadow never answers");
    }
    // The outcomes of half of them arrive: all failed, so the candidate
    // (whose probabilities are higher) has the lower Brier score.
    report_outcomes(&server, &ids[..10], true).await;
    let comparison = admin.compare(CARRIER).await.unwrap();
    assert_eq!(comparison.decisions_scored, 20);
    assert_eq!(comparison.outcomes_resolved, 10);
    assert_eq!(comparison.pending, 10);
    assert_eq!(comparison.outcome_rate, 1.0);
    let brier = comparison.brier.unwrap();
    assert!(brier.candidate < brier.active, "{brier:?}");
    assert!(brier.difference < 0.0 && brier.standard_error.is_finite());
    assert!(comparison.mean_abs_difference > 0.0);
    assert!(
        comparison
            .verdict
            .contains("v2-walk has the lower Brier score"),
        "{}",
        comparison.verdict
    );

    // Canary at 50 %: about half the entities get v2, each always the same.
    admin.canary(CARRIER, "v2-walk", 50.0).await.unwrap();
    let mut by_candidate = 0;
    for i in 0..200 {
        let id = format!("canary-{i}");
        let first = answering_version(&mut scoring, &id).await.model_version;
        let again = answering_version(&mut scoring, &id).await.model_version;
        assert_eq!(first, again, "a canary is sticky per entity");
        assert!(first == v1 || first == "v2-walk");
        by_candidate += usize::from(first == "v2-walk");
    }
    assert!(
        (60..=140).contains(&by_candidate),
        "{by_candidate} of 200 on the canary"
    );
    // The comparison went on: the same pair.
    assert!(admin.compare(CARRIER).await.unwrap().decisions_scored >= 420);

    // Promote, then roll back at once to the version that stayed loaded.
    admin.promote(CARRIER, "v2-walk").await.unwrap();
    assert_eq!(
        answering_version(&mut scoring, "after").await.model_version,
        "v2-walk"
    );
    let family = admin.family(CARRIER).await;
    assert_eq!(family.active, "v2-walk");
    assert_eq!(
        family.candidate, "",
        "the promoted candidate is no longer a candidate"
    );
    assert_eq!(family.previous, vec![v1.clone()]);
    let back = admin.rollback(CARRIER).await.unwrap();
    assert!(back.detail.contains(&v1), "{}", back.detail);
    assert_eq!(
        answering_version(&mut scoring, "after").await.model_version,
        v1
    );
    let e = admin.rollback(CARRIER).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");

    // Every action is listed: who, what, outcome.
    let list = admin.list().await.unwrap();
    let actions: Vec<(&str, &str)> = list
        .recent_actions
        .iter()
        .map(|a| (a.action.as_str(), a.outcome.as_str()))
        .collect();
    for expected in [
        ("deploy", "ok"),
        ("shadow", "ok"),
        ("canary", "ok"),
        ("promote", "ok"),
        ("rollback", "ok"),
        ("rollback", "refused"),
    ] {
        assert!(
            actions.contains(&expected),
            "{expected:?} not in {actions:?}"
        );
    }
    assert!(
        list.recent_actions
            .iter()
            .all(|a| a.who == "lifecycle-test" && a.at.is_some())
    );
    server.stop().await.unwrap();

    // The state survives a restart: v2 registered and loaded, v1 active.
    let server = common::lifecycle::server(&repo, Some(TOKEN)).await;
    let mut admin = Admin::new(server.channel().await, Some(TOKEN));
    let family = admin.family(CARRIER).await;
    assert_eq!(family.active, v1);
    assert!(
        family
            .versions
            .iter()
            .any(|v| v.version == "v2-walk" && v.state == "loaded")
    );
    admin
        .promote(CARRIER, "v2-walk")
        .await
        .expect("a version from before the restart promotes");
    let mut scoring = server.scoring().await;
    assert_eq!(
        answering_version(&mut scoring, "restarted")
            .await
            .model_version,
        "v2-walk"
    );
    server.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&repo);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_candidate_that_outcomes_prove_better_is_promoted_automatically() {
    let repo = repo_copy("auto");
    let v2_dir = variant(&repo, CARRIER, "v2-auto", 1.5, |_| {});
    let server = common::lifecycle::server(&repo, Some(TOKEN)).await;
    let mut admin = Admin::new(server.channel().await, Some(TOKEN));
    let mut scoring = server.scoring().await;
    admin
        .deploy(pb::DeployModelRequest {
            files: files_of(&v2_dir),
            shadow: true,
            auto_promote: Some(pb::AutoPromote {
                min_outcomes: 30,
                sigmas: 2.0,
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: Vec<String> = (0..40).map(|i| format!("auto-{i}")).collect();
    for id in &ids {
        answering_version(&mut scoring, id).await;
    }
    // Too few outcomes: nothing happens.
    report_outcomes(&server, &ids[..20], true).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_ne!(admin.family(CARRIER).await.active, "v2-auto");
    report_outcomes(&server, &ids[20..], true).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while admin.family(CARRIER).await.active != "v2-auto" {
        assert!(Instant::now() < deadline, "not promoted automatically");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let list = admin.list().await.unwrap();
    let promotion = list
        .recent_actions
        .iter()
        .find(|a| a.action == "promote" && a.version == "v2-auto")
        .expect("the promotion is listed");
    assert!(promotion.who.starts_with("auto-promote"), "{promotion:?}");
    assert_eq!(
        answering_version(&mut scoring, "later").await.model_version,
        "v2-auto"
    );
    server.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&repo);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployed_version_whose_files_changed_on_disk_is_refused_at_restart() {
    let repo = repo_copy("tampered");
    let v1 = active_version(&repo, CARRIER);
    let v2_dir = variant(&repo, CARRIER, "v2-tamper", 0.7, |_| {});
    let server = common::lifecycle::server(&repo, Some(TOKEN)).await;
    let mut admin = Admin::new(server.channel().await, Some(TOKEN));
    admin.deploy_dir(&v2_dir).await.unwrap();
    server.stop().await.unwrap();

    // Someone edits the deployed version in place (its metrics, say).
    let manifest = repo.join("carrier_failure/v2-tamper/manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    m["metrics"]["test"]["roc_auc"] = 0.99.into();
    std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();

    let server = common::lifecycle::server(&repo, Some(TOKEN)).await;
    let mut admin = Admin::new(server.channel().await, Some(TOKEN));
    let family = admin.family(CARRIER).await;
    assert_eq!(family.active, v1, "the active version still serves");
    let listed = family
        .versions
        .iter()
        .find(|v| v.version == "v2-tamper")
        .unwrap();
    assert_eq!(listed.state, "refused");
    assert!(
        listed.refused_reason.contains("changed since"),
        "{}",
        listed.refused_reason
    );
    let e = admin.promote(CARRIER, "v2-tamper").await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    server.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&repo);
}
