//! The `ModelAdmin` service: authorises the caller, converts the request,
//! calls the [`Lifecycle`] and renders the registry back.
//!
//! Authorisation ([`AdminAuth`], an interceptor: it sees the headers before
//! the body is read, so an unauthorised caller cannot make the server decode
//! an artifact's megabytes): the server's admin token (`admin_token`) must be
//! presented as `authorization: Bearer <token>` metadata. Without a token
//! configured, admin is disabled and every call is `PERMISSION_DENIED`; a call
//! without the header is `UNAUTHENTICATED`, one with another token
//! `PERMISSION_DENIED`. Tokens are compared by their SHA-256, so the
//! comparison's time says nothing about the token.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::ApiError;
use crate::lifecycle::audit::bounded;
use crate::lifecycle::{
    AdminAction, Deploy, FamilyView, Lifecycle, LifecycleError, RegistryView, Start, family_named,
};
use crate::models::ArtifactFiles;
use crate::models::artifact::sha256_hex;
use crate::models::repository::AutoPromote;
use crate::pb;
use crate::pb::model_admin_server::ModelAdmin;
use crate::registry::Comparison;
use crate::registry::comparison::LossReport;
use crate::schema::RiskKind;

/// The metadata key naming who acts, for the audit log.
pub const USER_HEADER: &str = "x-detour-user";

/// Who acts, as [`AdminAuth`] established it.
#[derive(Debug, Clone)]
struct Caller(String);

/// The admin token check, run before a request's body is decoded.
#[derive(Debug, Clone)]
pub struct AdminAuth {
    /// SHA-256 of the admin token; `None`: admin disabled.
    token_sha256: Option<String>,
}

impl AdminAuth {
    /// Checks callers against `token`; `None` disables admin.
    pub fn new(token: Option<&str>) -> Self {
        AdminAuth {
            token_sha256: token.map(|t| sha256_hex(t.as_bytes())),
        }
    }
}

impl tonic::service::Interceptor for AdminAuth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.token_sha256 else {
            return Err(Status::permission_denied(
                "model admin is disabled on this server: start it with an admin token \
                 (admin_token, DETOUR_ADMIN_TOKEN)",
            ));
        };
        let metadata = request.metadata();
        let Some(header) = metadata.get("authorization") else {
            return Err(Status::unauthenticated(
                "model admin needs `authorization: Bearer <token>` metadata",
            ));
        };
        let presented = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| {
                Status::unauthenticated("the authorization metadata must be `Bearer <token>`")
            })?;
        if sha256_hex(presented.trim().as_bytes()) != *expected {
            return Err(Status::permission_denied(
                "the admin token is not this server's",
            ));
        }
        let who = metadata
            .get(USER_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(bounded)
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "admin".to_string());
        request.extensions_mut().insert(Caller(who));
        Ok(request)
    }
}

/// gRPC adapter over the [`Lifecycle`]; serve it behind [`AdminAuth`].
#[derive(Debug)]
pub struct ModelAdminService {
    lifecycle: Arc<Lifecycle>,
}

impl ModelAdminService {
    /// The service.
    pub fn new(lifecycle: Arc<Lifecycle>) -> Self {
        ModelAdminService { lifecycle }
    }

    /// Who the caller is, as [`AdminAuth`] established; a request that did
    /// not pass it is refused here too.
    fn authorize<T>(&self, request: &Request<T>) -> Result<String, Status> {
        request
            .extensions()
            .get::<Caller>()
            .map(|c| c.0.clone())
            .ok_or_else(|| Status::permission_denied("model admin requests pass AdminAuth"))
    }

    async fn family_state(&self, kind: RiskKind) -> pb::FamilyModels {
        let view = self.lifecycle.list().await;
        view.families
            .into_iter()
            .find(|f| f.kind == kind)
            .map(family_models)
            .unwrap_or_default()
    }

    async fn changed(
        &self,
        kind: RiskKind,
        result: Result<String, LifecycleError>,
    ) -> Result<Response<pb::ModelChangeResponse>, Status> {
        let detail = result.map_err(ApiError::from)?;
        Ok(Response::new(pb::ModelChangeResponse {
            detail,
            state: Some(self.family_state(kind).await),
        }))
    }
}

fn family(name: &str) -> Result<RiskKind, Status> {
    family_named(name).map_err(|e| ApiError::invalid("family", e.to_string()).into())
}

fn auto_promote(rule: Option<&pb::AutoPromote>) -> Option<AutoPromote> {
    rule.filter(|r| r.min_outcomes > 0).map(|r| AutoPromote {
        min_outcomes: r.min_outcomes,
        sigmas: r.sigmas,
    })
}

#[tonic::async_trait]
impl ModelAdmin for ModelAdminService {
    async fn list_models(
        &self,
        request: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        self.authorize(&request)?;
        Ok(Response::new(list_response(self.lifecycle.list().await)))
    }

    async fn deploy_model(
        &self,
        request: Request<pb::DeployModelRequest>,
    ) -> Result<Response<pb::DeployModelResponse>, Status> {
        let who = self.authorize(&request)?;
        let message = request.into_inner();
        let files = match (message.files.is_empty(), message.directory.is_empty()) {
            (false, true) => {
                let mut files = ArtifactFiles {
                    origin: "upload".into(),
                    ..ArtifactFiles::default()
                };
                for (i, file) in message.files.into_iter().enumerate() {
                    files.add(file.name, file.content).map_err(|e| {
                        Status::from(ApiError::invalid(format!("files[{i}]"), e.to_string()))
                    })?;
                }
                files
            }
            (true, false) => ArtifactFiles::read_dir(std::path::Path::new(&message.directory))
                .map_err(|e| Status::from(ApiError::invalid("directory", e.to_string())))?,
            (true, true) => {
                return Err(ApiError::invalid(
                    "files",
                    "give the artifact's files, or a directory the server can read",
                )
                .into());
            }
            (false, false) => {
                return Err(
                    ApiError::invalid("directory", "give files or a directory, not both").into(),
                );
            }
        };
        let start = match (message.shadow, message.canary_percent) {
            (false, 0.0) => Start::Idle,
            (true, 0.0) => Start::Shadow,
            (false, p) => Start::Canary(p),
            (true, _) => {
                return Err(ApiError::invalid(
                    "canary_percent",
                    "a version starts as shadow or as canary, not both",
                )
                .into());
            }
        };
        let deploy = Deploy {
            family: (!message.family.is_empty()).then_some(message.family),
            files,
            force: message.force,
            start,
            auto_promote: auto_promote(message.auto_promote.as_ref()),
        };
        let deployed = self
            .lifecycle
            .deploy(&who, deploy)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::DeployModelResponse {
            family: deployed.kind.name().to_string(),
            version: deployed.version,
            already_deployed: deployed.already,
            forced_past: deployed.forced_past.unwrap_or_default(),
            state: Some(self.family_state(deployed.kind).await),
        }))
    }

    async fn promote_model(
        &self,
        request: Request<pb::PromoteModelRequest>,
    ) -> Result<Response<pb::ModelChangeResponse>, Status> {
        let who = self.authorize(&request)?;
        let message = request.into_inner();
        let kind = family(&message.family)?;
        let result = self.lifecycle.promote(&who, kind, &message.version).await;
        self.changed(kind, result).await
    }

    async fn rollback_model(
        &self,
        request: Request<pb::RollbackModelRequest>,
    ) -> Result<Response<pb::ModelChangeResponse>, Status> {
        let who = self.authorize(&request)?;
        let kind = family(&request.get_ref().family)?;
        let result = self.lifecycle.rollback(&who, kind).await;
        self.changed(kind, result).await
    }

    async fn set_shadow(
        &self,
        request: Request<pb::SetShadowRequest>,
    ) -> Result<Response<pb::ModelChangeResponse>, Status> {
        let who = self.authorize(&request)?;
        let message = request.into_inner();
        let kind = family(&message.family)?;
        let version = (!message.version.is_empty()).then_some(message.version.as_str());
        let rule = auto_promote(message.auto_promote.as_ref());
        let result = self
            .lifecycle
            .set_candidate(&who, kind, version, None, rule)
            .await;
        self.changed(kind, result).await
    }

    async fn set_canary(
        &self,
        request: Request<pb::SetCanaryRequest>,
    ) -> Result<Response<pb::ModelChangeResponse>, Status> {
        let who = self.authorize(&request)?;
        let message = request.into_inner();
        let kind = family(&message.family)?;
        let version = (!message.version.is_empty()).then_some(message.version.as_str());
        if version.is_some() && !(message.percent > 0.0 && message.percent <= 100.0) {
            return Err(ApiError::invalid(
                "percent",
                format!("must be within (0, 100], got {}", message.percent),
            )
            .into());
        }
        let rule = auto_promote(message.auto_promote.as_ref());
        let result = self
            .lifecycle
            .set_candidate(&who, kind, version, Some(message.percent), rule)
            .await;
        self.changed(kind, result).await
    }

    async fn unload_model(
        &self,
        request: Request<pb::UnloadModelRequest>,
    ) -> Result<Response<pb::ModelChangeResponse>, Status> {
        let who = self.authorize(&request)?;
        let message = request.into_inner();
        let kind = family(&message.family)?;
        let result = self.lifecycle.unload(&who, kind, &message.version).await;
        self.changed(kind, result).await
    }

    async fn compare_models(
        &self,
        request: Request<pb::CompareModelsRequest>,
    ) -> Result<Response<pb::Comparison>, Status> {
        self.authorize(&request)?;
        let kind = family(&request.get_ref().family)?;
        let view = self.lifecycle.list().await;
        let family = &view.families[kind.index()];
        match &family.comparison {
            Some(c) => Ok(Response::new(comparison(c, running(family, c)))),
            None => Err(ApiError::NotFound(format!(
                "{} has no comparison: set a shadow or canary first",
                kind.name()
            ))
            .into()),
        }
    }

    async fn score_features(
        &self,
        request: Request<pb::ScoreFeaturesRequest>,
    ) -> Result<Response<pb::ScoreFeaturesResponse>, Status> {
        self.authorize(&request)?;
        let message = request.get_ref();
        let kind = family(&message.family)?;
        let snapshot = self.lifecycle.registry().snapshot();
        Ok(Response::new(super::score_features::score_features(
            &snapshot, kind, message,
        )?))
    }
}

fn running(family: &FamilyView, c: &Comparison) -> bool {
    family.state.active.as_deref() == Some(c.active_version.as_str())
        && family
            .state
            .candidate
            .as_ref()
            .is_some_and(|candidate| candidate.version == c.candidate_version)
}

fn timestamp(rfc3339: &str) -> Option<prost_types::Timestamp> {
    let t = chrono::DateTime::parse_from_rfc3339(rfc3339).ok()?;
    Some(prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    })
}

fn list_response(view: RegistryView) -> pb::ListModelsResponse {
    pb::ListModelsResponse {
        families: view.families.into_iter().map(family_models).collect(),
        backend: view.backend.to_string(),
        registry_stale: view.stale.is_some(),
        stale_reason: view.stale.unwrap_or_default(),
        recent_actions: view.recent.iter().map(action).collect(),
    }
}

fn action(a: &AdminAction) -> pb::AdminAction {
    pb::AdminAction {
        at: timestamp(&a.at),
        who: a.who.clone(),
        action: a.action.clone(),
        family: a.family.clone(),
        version: a.version.clone(),
        outcome: a.outcome.clone(),
        detail: a.detail.clone(),
    }
}

fn family_models(family: FamilyView) -> pb::FamilyModels {
    let state = &family.state;
    let candidate = state.candidate.as_ref();
    let versions = family
        .versions
        .iter()
        .map(|v| {
            let role = if state.active.as_deref() == Some(v.version.as_str()) {
                "active"
            } else if let Some(c) = candidate.filter(|c| c.version == v.version) {
                if c.canary_percent.is_some() {
                    "canary"
                } else {
                    "shadow"
                }
            } else if v.refused.is_some() {
                "refused"
            } else if state.previous.contains(&v.version) {
                "previous"
            } else {
                "loaded"
            };
            let (name, learner, metrics) = match &v.model {
                Some(model) => {
                    let test = &model.manifest.metrics["test"];
                    let metrics = ["roc_auc", "brier", "log_loss", "ece"]
                        .into_iter()
                        .filter_map(|m| test[m].as_f64().map(|x| (m.to_string(), x)))
                        .collect();
                    (
                        model.manifest.name.clone(),
                        model.manifest.learner.clone(),
                        metrics,
                    )
                }
                None => Default::default(),
            };
            pb::ModelVersion {
                version: v.version.clone(),
                state: role.to_string(),
                name,
                learner,
                metrics,
                deployed_at: timestamp(&v.info.deployed_at),
                deployed_by: v.info.deployed_by.clone(),
                forced: v.info.forced,
                refused_reason: v.refused.clone().unwrap_or_default(),
            }
        })
        .collect();
    pb::FamilyModels {
        family: family.kind.name().to_string(),
        active: state.active.clone().unwrap_or_default(),
        candidate: candidate.map(|c| c.version.clone()).unwrap_or_default(),
        candidate_mode: match candidate {
            Some(c) if c.canary_percent.is_some() => "canary",
            Some(_) => "shadow",
            None => "",
        }
        .to_string(),
        canary_percent: candidate.and_then(|c| c.canary_percent).unwrap_or(0.0),
        previous: state.previous.clone(),
        versions,
        comparison: family
            .comparison
            .as_ref()
            .map(|c| comparison(c, running(&family, c))),
        auto_promote: candidate
            .and_then(|c| c.auto_promote)
            .map(|r| pb::AutoPromote {
                min_outcomes: r.min_outcomes,
                sigmas: r.sigmas,
            }),
    }
}

fn loss(report: &LossReport) -> pb::LossComparison {
    pb::LossComparison {
        active: report.active,
        candidate: report.candidate,
        difference: report.difference,
        standard_error: report.standard_error,
    }
}

fn comparison(c: &Comparison, running: bool) -> pb::Comparison {
    let report = c.report();
    let verdict = if report.outcomes_resolved < 2 {
        format!(
            "{} outcomes resolved so far: too few to compare",
            report.outcomes_resolved
        )
    } else {
        let d = report.brier.difference;
        let se = report.brier.standard_error;
        let sigmas = if se > 0.0 {
            d.abs() / se
        } else {
            f64::INFINITY
        };
        let better = if d < 0.0 {
            &c.candidate_version
        } else {
            &c.active_version
        };
        format!(
            "{better} has the lower Brier score by {:.5} ({sigmas:.1} standard errors) on {} \
             resolved decisions",
            d.abs(),
            report.outcomes_resolved
        )
    };
    pb::Comparison {
        family: c.kind.name().to_string(),
        active_version: c.active_version.clone(),
        candidate_version: c.candidate_version.clone(),
        started_at: timestamp(&c.started_at),
        running,
        decisions_scored: report.decisions_scored,
        outcomes_resolved: report.outcomes_resolved,
        pending: report.pending,
        outcome_rate: report.outcome_rate,
        brier: Some(loss(&report.brier)),
        log_loss: Some(loss(&report.log_loss)),
        mean_abs_difference: report.mean_abs_difference,
        agreement: report.agreement,
        verdict,
    }
}
