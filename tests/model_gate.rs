//! What the model lifecycle refuses, over the wire: every gate refusal and
//! bad request leaves the served versions as they were, and admin needs the
//! server's token.

mod common;

use std::path::Path;

use common::lifecycle::{
    Admin, TOKEN, active_version, answering_version, files_of, repo_copy, server, variant,
};
use detour::pb;
use detour::schema::RiskKind;
use tonic::Code;

const CARRIER: RiskKind = RiskKind::CarrierFailure;

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
