//! The model lifecycle over the wire, on one server with the directory
//! backend: deploy → shadow → canary → promote → rollback, the comparison on
//! ingested outcomes, auto-promotion, the gate's refusals, the token, and
//! the state surviving a restart.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::lifecycle::{
    Admin, TOKEN, active_version, answering_version, files_of, repo_copy, variant,
};
use common::{TestServer, config, shipment, shipment_event};
use detour::pb;
use detour::schema::RiskKind;
use tonic::Code;

const CARRIER: RiskKind = RiskKind::CarrierFailure;

async fn server(repo: &Path, token: Option<&str>) -> TestServer {
    let mut config = config(None, "lifecycle");
    config.models = repo.to_path_buf();
    config.admin_token = token.map(str::to_string);
    TestServer::start(config).await
}

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
    let answer = server
        .ingest()
        .await
        .ingest_events(pb::IngestEventsRequest { events })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.accepted as usize, ids.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_goes_from_deploy_through_shadow_and_canary_to_promote_and_rollback() {
    let repo = repo_copy("walk");
    let v1 = active_version(&repo, CARRIER);
    let v2_dir = variant(&repo, CARRIER, "v2-walk", 1.0, |_| {});
    let server = server(&repo, Some(TOKEN)).await;
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
    let server = self::server(&repo, Some(TOKEN)).await;
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
    let server = server(&repo, Some(TOKEN)).await;
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

/// A variant's files with one changed.
fn with_file(dir: &Path, name: &str, content: Option<Vec<u8>>) -> Vec<pb::ArtifactFile> {
    let mut files = files_of(dir);
    files.retain(|f| f.name != name);
    if let Some(content) = content {
        files.push(pb::ArtifactFile {
            name: name.into(),
            content,
        });
    }
    files
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gate_refuses_bad_versions_with_reasons_and_changes_nothing() {
    let repo = repo_copy("gate");
    let v1 = active_version(&repo, CARRIER);
    let good = variant(&repo, CARRIER, "v2-gate", 0.5, |_| {});
    let server = server(&repo, Some(TOKEN)).await;
    let mut admin = Admin::new(server.channel().await, Some(TOKEN));
    let mut scoring = server.scoring().await;
    let manifest = std::fs::read(good.join("manifest.json")).unwrap();
    let weights = std::fs::read(good.join("weights.json")).unwrap();
    let edited = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        edit(&mut m);
        serde_json::to_vec(&m).unwrap()
    };

    let cases: Vec<(&str, Vec<pb::ArtifactFile>, Code, &str)> = vec![
        (
            "truncated upload",
            with_file(
                &good,
                "manifest.json",
                Some(manifest[..manifest.len() / 2].to_vec()),
            ),
            Code::InvalidArgument,
            "manifest.json",
        ),
        (
            "missing weights",
            with_file(&good, "weights.json", None),
            Code::InvalidArgument,
            "weights.json",
        ),
        (
            "unknown family",
            with_file(
                &good,
                "manifest.json",
                Some(edited(&|m| m["family"] = "warehouse_fire".into())),
            ),
            Code::InvalidArgument,
            "unknown family",
        ),
        (
            "feature schema",
            with_file(
                &good,
                "manifest.json",
                Some(edited(&|m| m["features"][0]["name"] = "weather".into())),
            ),
            Code::InvalidArgument,
            "feature schema",
        ),
        (
            "checksum",
            with_file(
                &good,
                "weights.json",
                Some({
                    let mut w = weights.clone();
                    let at = w.iter().rposition(|b| b.is_ascii_digit()).unwrap();
                    w[at] = if w[at] == b'1' { b'2' } else { b'1' };
                    w
                }),
            ),
            Code::InvalidArgument,
            "checksum",
        ),
        (
            "no golden rows",
            with_file(
                &good,
                "manifest.json",
                Some(edited(&|m| {
                    m.as_object_mut().unwrap().remove("golden_file");
                    m.as_object_mut().unwrap().remove("golden_sha256");
                })),
            ),
            Code::InvalidArgument,
            "golden rows",
        ),
        (
            "golden rows that do not reproduce",
            with_file(
                &good,
                "manifest.json",
                Some(edited(&|m| {
                    let intercept = m["calibration"]["intercept"].as_f64().unwrap();
                    m["calibration"]["intercept"] = (intercept + 1e-6).into();
                })),
            ),
            Code::InvalidArgument,
            "golden row 0",
        ),
        (
            "worse held-out metrics",
            with_file(
                &good,
                "manifest.json",
                Some(edited(&|m| m["metrics"]["test"]["roc_auc"] = 0.55.into())),
            ),
            Code::FailedPrecondition,
            "roc_auc",
        ),
        (
            "a family the deploy does not name",
            files_of(&good),
            Code::InvalidArgument,
            "but the deploy names",
        ),
    ];
    for (case, files, code, says) in cases {
        let family = if case == "a family the deploy does not name" {
            "order_fallout"
        } else {
            ""
        };
        let error = admin
            .deploy(pb::DeployModelRequest {
                family: family.into(),
                files,
                ..Default::default()
            })
            .await
            .expect_err(case);
        assert_eq!(error.code(), code, "{case}: {error:?}");
        assert!(
            error.message().contains(says),
            "{case}: {}",
            error.message()
        );
        let family = admin.family(CARRIER).await;
        assert_eq!(family.active, v1, "{case} changed nothing");
        assert_eq!(family.versions.len(), 1, "{case} registered nothing");
    }
    assert_eq!(answering_version(&mut scoring, "x").await.model_version, v1);

    // Force overrides only the metric check, and is recorded.
    let worse = with_file(
        &good,
        "manifest.json",
        Some(edited(&|m| m["metrics"]["test"]["roc_auc"] = 0.55.into())),
    );
    let forced = admin
        .deploy(pb::DeployModelRequest {
            files: worse.clone(),
            force: true,
            ..Default::default()
        })
        .await
        .expect("force passes the metric check");
    assert!(forced.forced_past.contains("roc_auc"), "{forced:?}");
    let family = admin.family(CARRIER).await;
    assert!(
        family
            .versions
            .iter()
            .any(|v| v.version == "v2-gate" && v.forced)
    );
    // The same version again: the same bytes are fine, other bytes are not.
    let again = admin
        .deploy(pb::DeployModelRequest {
            files: worse,
            force: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(again.already_deployed);
    let other = admin.deploy_dir(&good).await.unwrap_err();
    assert_eq!(other.code(), Code::AlreadyExists, "{other:?}");

    // A folder the server can read deploys too.
    let by_dir = variant(&repo, CARRIER, "v3-dir", 0.2, |_| {});
    let deployed = admin
        .deploy(pb::DeployModelRequest {
            directory: by_dir.display().to_string(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(deployed.version, "v3-dir");
    let missing = admin
        .deploy(pb::DeployModelRequest {
            directory: "/no/such/dir".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::InvalidArgument);
    assert!(
        missing.message().contains("/no/such/dir"),
        "{}",
        missing.message()
    );

    // Refusals of the other calls.
    let e = admin.promote(CARRIER, "v9-none").await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    // In the repository (the trainer wrote it there) but never deployed.
    let on_disk = variant(&repo, CARRIER, "v4-disk", 0.3, |_| {});
    std::fs::rename(&on_disk, repo.join("carrier_failure/v4-disk")).unwrap();
    let e = admin.promote(CARRIER, "v4-disk").await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("deploy it first"), "{}", e.message());
    for percent in [0.0, -5.0, 150.0, f64::NAN] {
        let e = admin.canary(CARRIER, "v3-dir", percent).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{percent}: {e:?}");
    }
    let e = admin
        .shadow(
            CARRIER,
            "v2-gate",
            Some(pb::AutoPromote {
                min_outcomes: 10,
                sigmas: -3.0,
            }),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "negative sigmas: {e:?}");
    let request = admin.request(pb::SetShadowRequest {
        family: "site_congestion".into(),
        version: "any".into(),
        auto_promote: Some(pb::AutoPromote {
            min_outcomes: 10,
            sigmas: 2.0,
        }),
    });
    let e = admin.client.set_shadow(request).await.unwrap_err();
    assert!(
        e.code() == Code::InvalidArgument && e.message().contains("no outcome"),
        "auto-promote without outcomes: {e:?}"
    );
    let e = admin.promote(CARRIER, "../../etc").await.unwrap_err();
    assert_eq!(
        e.code(),
        Code::InvalidArgument,
        "a path is no version: {e:?}"
    );
    let e = admin.shadow(CARRIER, &v1, None).await.unwrap_err();
    assert_eq!(
        e.code(),
        Code::FailedPrecondition,
        "the active version is no candidate"
    );
    let request = admin.request(pb::PromoteModelRequest {
        family: "warehouse".into(),
        version: "x".into(),
    });
    let e = admin.client.promote_model(request).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let request = admin.request(pb::UnloadModelRequest {
        family: CARRIER.name().into(),
        version: v1.clone(),
    });
    let e = admin.client.unload_model(request).await.unwrap_err();
    assert_eq!(
        e.code(),
        Code::FailedPrecondition,
        "the active version stays"
    );
    let request = admin.request(pb::UnloadModelRequest {
        family: CARRIER.name().into(),
        version: "v3-dir".into(),
    });
    admin
        .client
        .unload_model(request)
        .await
        .expect("an idle version unloads");
    let e = admin.promote(CARRIER, "v3-dir").await.unwrap_err();
    assert_eq!(
        e.code(),
        Code::FailedPrecondition,
        "an unloaded version is no longer loaded, its folder stays: {e:?}"
    );
    assert!(e.message().contains("deploy it first"), "{}", e.message());

    let family = admin.family(CARRIER).await;
    assert_eq!(family.active, v1);
    assert_eq!(answering_version(&mut scoring, "x").await.model_version, v1);
    let refused = admin
        .list()
        .await
        .unwrap()
        .recent_actions
        .iter()
        .filter(|a| a.outcome == "refused")
        .count();
    assert!(refused >= 9, "every refusal is listed ({refused})");
    server.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&repo);
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_needs_the_servers_token() {
    let repo = repo_copy("token");
    let disabled = server(&repo, None).await;
    let mut admin = Admin::new(disabled.channel().await, Some(TOKEN));
    let e = admin.list().await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    assert!(e.message().contains("disabled"), "{}", e.message());
    disabled.stop().await.unwrap();

    let server = server(&repo, Some(TOKEN)).await;
    let channel = server.channel().await;
    let e = Admin::new(channel.clone(), None).list().await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    let mut wrong = Admin::new(channel.clone(), Some("not-the-token-at-all"));
    let e = wrong.list().await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let e = wrong.promote(CARRIER, "x").await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(Admin::new(channel, Some(TOKEN)).list().await.is_ok());
    server.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&repo);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployed_version_whose_files_changed_on_disk_is_refused_at_restart() {
    let repo = repo_copy("tampered");
    let v1 = active_version(&repo, CARRIER);
    let v2_dir = variant(&repo, CARRIER, "v2-tamper", 0.7, |_| {});
    let server = server(&repo, Some(TOKEN)).await;
    let mut admin = Admin::new(server.channel().await, Some(TOKEN));
    admin.deploy_dir(&v2_dir).await.unwrap();
    server.stop().await.unwrap();

    // Someone edits the deployed version in place (its metrics, say).
    let manifest = repo.join("carrier_failure/v2-tamper/manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    m["metrics"]["test"]["roc_auc"] = 0.99.into();
    std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();

    let server = self::server(&repo, Some(TOKEN)).await;
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
