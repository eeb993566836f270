//! Helpers of the model lifecycle tests: a private copy of the model
//! repository, candidate versions made from the shipped artifact, and an
//! admin client that presents a token.

use std::path::{Path, PathBuf};

use detour::models::artifact::{GoldenRows, save_golden_rows, save_model};
use detour::models::repository::active_dir;
use detour::models::{ArtifactFiles, Manifest, load_version};
use detour::pb;
use detour::pb::model_admin_client::ModelAdminClient;
use detour::schema::{FeatureVector, RiskKind, schema_of};
use tonic::transport::Channel;

/// The admin token the tests' servers are started with.
pub const TOKEN: &str = "lifecycle-test-token-0123456789";

/// A server (directory backend) over the repository `repo`, with admin
/// `token`.
pub async fn server(repo: &Path, token: Option<&str>) -> super::TestServer {
    let mut config = super::config(None, "lifecycle");
    config.models = repo.to_path_buf();
    config.admin_token = token.map(str::to_string);
    super::TestServer::start(config).await
}

/// A fresh copy of the shipped model repository under the temp directory.
pub fn repo_copy(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("detour-lifecycle-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&super::models_dir(), &dir);
    dir
}

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

/// The active version's name in a repository.
pub fn active_version(repo: &Path, kind: RiskKind) -> String {
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(active_dir(repo, kind).unwrap().join("manifest.json")).unwrap(),
    )
    .unwrap();
    manifest.version
}

/// A new version of `kind` made from the active artifact of `repo`: the same
/// weights, `shift` added to the calibration's intercept (so it answers
/// differently), `edit` applied to the manifest, and golden rows the new
/// model reproduces. Written to a folder of its own, which is returned.
pub fn variant(
    repo: &Path,
    kind: RiskKind,
    version: &str,
    shift: f64,
    edit: impl FnOnce(&mut Manifest),
) -> PathBuf {
    let source = active_dir(repo, kind).unwrap();
    let mut model = load_version(&source, kind, schema_of(kind)).unwrap();
    model.manifest.version = version.to_string();
    model.manifest.calibration.intercept += shift;
    let old: GoldenRows = serde_json::from_slice(
        &std::fs::read(source.join(model.manifest.golden_file.as_ref().unwrap())).unwrap(),
    )
    .unwrap();
    let rows: Vec<FeatureVector> = old.vectors().collect();
    let refs: Vec<&FeatureVector> = rows.iter().collect();
    let golden = GoldenRows::of(&model, &refs);
    let out = std::env::temp_dir().join(format!(
        "detour-variant-{}-{version}-{}",
        kind.name(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&out);
    let mut manifest = model.manifest.clone();
    edit(&mut manifest);
    save_golden_rows(&out, &mut manifest, &golden).unwrap();
    let weights = std::fs::read(source.join(&manifest.weights_file)).unwrap();
    save_model(&out, &mut manifest, &weights).unwrap();
    out
}

/// The files of a folder as a deploy request sends them.
pub fn files_of(dir: &Path) -> Vec<pb::ArtifactFile> {
    ArtifactFiles::read_dir(dir)
        .unwrap()
        .files
        .into_iter()
        .map(|(name, content)| pb::ArtifactFile { name, content })
        .collect()
}

/// An admin client presenting `token` (none when `None`).
#[derive(Clone)]
pub struct Admin {
    pub client: ModelAdminClient<Channel>,
    pub token: Option<String>,
}

impl Admin {
    pub fn new(channel: Channel, token: Option<&str>) -> Self {
        Admin {
            client: ModelAdminClient::new(channel)
                .max_encoding_message_size(32 << 20)
                .max_decoding_message_size(32 << 20),
            token: token.map(str::to_string),
        }
    }

    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(token) = &self.token {
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        request
            .metadata_mut()
            .insert("x-detour-user", "lifecycle-test".parse().unwrap());
        request
    }

    pub async fn list(&mut self) -> Result<pb::ListModelsResponse, tonic::Status> {
        let request = self.request(pb::ListModelsRequest {});
        self.client
            .list_models(request)
            .await
            .map(|r| r.into_inner())
    }

    pub async fn family(&mut self, kind: RiskKind) -> pb::FamilyModels {
        self.list()
            .await
            .expect("ListModels answers")
            .families
            .into_iter()
            .find(|f| f.family == kind.name())
            .expect("every family is listed")
    }

    pub async fn deploy(
        &mut self,
        message: pb::DeployModelRequest,
    ) -> Result<pb::DeployModelResponse, tonic::Status> {
        let request = self.request(message);
        self.client
            .deploy_model(request)
            .await
            .map(|r| r.into_inner())
    }

    pub async fn deploy_dir(
        &mut self,
        dir: &Path,
    ) -> Result<pb::DeployModelResponse, tonic::Status> {
        self.deploy(pb::DeployModelRequest {
            files: files_of(dir),
            ..Default::default()
        })
        .await
    }

    pub async fn promote(
        &mut self,
        kind: RiskKind,
        version: &str,
    ) -> Result<pb::ModelChangeResponse, tonic::Status> {
        let request = self.request(pb::PromoteModelRequest {
            family: kind.name().into(),
            version: version.into(),
        });
        self.client
            .promote_model(request)
            .await
            .map(|r| r.into_inner())
    }

    pub async fn rollback(
        &mut self,
        kind: RiskKind,
    ) -> Result<pb::ModelChangeResponse, tonic::Status> {
        let request = self.request(pb::RollbackModelRequest {
            family: kind.name().into(),
        });
        self.client
            .rollback_model(request)
            .await
            .map(|r| r.into_inner())
    }

    pub async fn shadow(
        &mut self,
        kind: RiskKind,
        version: &str,
        auto_promote: Option<pb::AutoPromote>,
    ) -> Result<pb::ModelChangeResponse, tonic::Status> {
        let request = self.request(pb::SetShadowRequest {
            family: kind.name().into(),
            version: version.into(),
            auto_promote,
        });
        self.client
            .set_shadow(request)
            .await
            .map(|r| r.into_inner())
    }

    pub async fn canary(
        &mut self,
        kind: RiskKind,
        version: &str,
        percent: f64,
    ) -> Result<pb::ModelChangeResponse, tonic::Status> {
        let request = self.request(pb::SetCanaryRequest {
            family: kind.name().into(),
            version: version.into(),
            percent,
            auto_promote: None,
        });
        self.client
            .set_canary(request)
            .await
            .map(|r| r.into_inner())
    }

    pub async fn compare(&mut self, kind: RiskKind) -> Result<pb::Comparison, tonic::Status> {
        let request = self.request(pb::CompareModelsRequest {
            family: kind.name().into(),
        });
        self.client
            .compare_models(request)
            .await
            .map(|r| r.into_inner())
    }
}

/// The version that answers a score of shipment leg `id` (in transit).
pub async fn answering_version(
    scoring: &mut pb::risk_scoring_client::RiskScoringClient<Channel>,
    id: &str,
) -> pb::RiskScore {
    scoring
        .score_shipment(pb::ScoreShipmentRequest {
            shipment: Some(super::shipment(id, "UPS", "ATL", "JFK", 21, None)),
            as_of: None,
        })
        .await
        .expect("scoring answers")
        .into_inner()
}
