//! The `Recommendations` service: validates a request, lets the
//! [`Planner`] rank the options, renders the answer.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::{ApiError, convert};
use crate::features::FeatureStore;
use crate::pb;
use crate::pb::recommendations_server::Recommendations;
use crate::planning::{Planner, PolicyOverrides, ReallocationRequest, RerouteRequest, Subject};
use crate::recommend::Recommendation;
use crate::recommend::reallocation::OrderLine;
use crate::schema::RiskKind;

/// Most lines, stock positions or exclusions one request may carry.
const MAX_LIST: usize = 1_000;

/// gRPC adapter over a [`Planner`].
#[derive(Debug)]
pub struct RecommendationsService<S> {
    planner: Arc<Planner<S>>,
}

impl<S> RecommendationsService<S> {
    /// The service, answering with `planner`.
    pub fn new(planner: Arc<Planner<S>>) -> Self {
        RecommendationsService { planner }
    }
}

#[tonic::async_trait]
impl<S: FeatureStore> Recommendations for RecommendationsService<S> {
    async fn recommend_reallocation(
        &self,
        request: Request<pb::RecommendReallocationRequest>,
    ) -> Result<Response<pb::Recommendation>, Status> {
        let request = reallocation_request(request.get_ref())?;
        let models = self.planner.models();
        let model = &models.model(RiskKind::OrderFallout).manifest;
        let span = tracing::info_span!(
            "recommend_reallocation",
            family = RiskKind::OrderFallout.name(),
            model = %model.name,
            version = %model.version,
            lines = request.lines.len(),
        );
        let answer = self
            .planner
            .reallocate(&models, request)
            .instrument(span)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(recommendation(answer)))
    }

    async fn recommend_reroute(
        &self,
        request: Request<pb::RecommendRerouteRequest>,
    ) -> Result<Response<pb::Recommendation>, Status> {
        let request = reroute_request(request.get_ref())?;
        let models = self.planner.models();
        let model = &models.model(RiskKind::CarrierFailure).manifest;
        let span = tracing::info_span!(
            "recommend_reroute",
            family = RiskKind::CarrierFailure.name(),
            model = %model.name,
            version = %model.version,
        );
        let answer = self
            .planner
            .reroute(&models, request)
            .instrument(span)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(recommendation(answer)))
    }
}

fn reallocation_request(
    m: &pb::RecommendReallocationRequest,
) -> Result<ReallocationRequest, ApiError> {
    use pb::recommend_reallocation_request::Subject as S;
    let order = match &m.subject {
        Some(S::Order(order)) => Subject::Inline(convert::order(Some(order), "order")?),
        Some(S::OrderId(id)) => Subject::ById(convert::id(id, "", "order_id")?),
        None => return Err(ApiError::invalid("order", "order or order_id is required")),
    };
    for (name, len) in [
        ("lines", m.lines.len()),
        ("inventory", m.inventory.len()),
        ("exclude_sites", m.exclude_sites.len()),
    ] {
        if len > MAX_LIST {
            return Err(ApiError::invalid(
                name,
                format!("at most {MAX_LIST} entries"),
            ));
        }
    }
    // Lines of the same SKU are one need: stock must cover their sum.
    let mut lines: Vec<OrderLine> = Vec::with_capacity(m.lines.len());
    for (i, line) in m.lines.iter().enumerate() {
        let at = format!("lines[{i}]");
        let sku = convert::code(&line.sku, &at, "sku")?;
        let quantity = convert::quantity(line.quantity, &at, "quantity")?;
        match lines.iter_mut().find(|l| l.sku == sku) {
            Some(existing) => existing.quantity += quantity,
            None => lines.push(OrderLine { sku, quantity }),
        }
    }
    let stock = m
        .inventory
        .iter()
        .enumerate()
        .map(|(i, p)| convert::inventory(p, &format!("inventory[{i}]")))
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(ReallocationRequest {
        order,
        lines,
        stock,
        as_of: convert::optional_time(m.as_of.as_ref(), "", "as_of")?,
        excluded_sites: codes(&m.exclude_sites, "exclude_sites")?,
        overrides: overrides(m.policy.as_ref())?,
    })
}

fn reroute_request(m: &pb::RecommendRerouteRequest) -> Result<RerouteRequest, ApiError> {
    use pb::recommend_reroute_request::Subject as S;
    let shipment = match &m.subject {
        Some(S::Shipment(shipment)) => {
            Subject::Inline(convert::shipment(Some(shipment), "shipment")?)
        }
        Some(S::ShipmentId(id)) => Subject::ById(convert::id(id, "", "shipment_id")?),
        None => {
            return Err(ApiError::invalid(
                "shipment",
                "shipment or shipment_id is required",
            ));
        }
    };
    if m.exclude_carriers.len() > MAX_LIST {
        return Err(ApiError::invalid(
            "exclude_carriers",
            format!("at most {MAX_LIST} entries"),
        ));
    }
    Ok(RerouteRequest {
        shipment,
        as_of: convert::optional_time(m.as_of.as_ref(), "", "as_of")?,
        excluded_carriers: codes(&m.exclude_carriers, "exclude_carriers")?,
        overrides: overrides(m.policy.as_ref())?,
    })
}

fn codes(values: &[String], name: &str) -> Result<Vec<String>, ApiError> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| convert::code(v, "", &format!("{name}[{i}]")))
        .collect()
}

fn overrides(policy: Option<&pb::CostPolicy>) -> Result<PolicyOverrides, ApiError> {
    let Some(p) = policy else {
        return Ok(PolicyOverrides::default());
    };
    let positive = |value: f64, name: &str| -> Result<Option<f64>, ApiError> {
        if value == 0.0 {
            return Ok(None);
        }
        convert::quantity(value, "policy", name).map(Some)
    };
    let safe_risk = positive(p.safe_risk, "safe_risk")?;
    if safe_risk.is_some_and(|r| r > 1.0) {
        return Err(ApiError::invalid(
            "policy.safe_risk",
            "must be within [0, 1]",
        ));
    }
    Ok(PolicyOverrides {
        failure_cost: positive(p.failure_cost, "failure_cost")?,
        approval_cost_delta: positive(p.approval_cost_delta, "approval_cost_delta")?,
        safe_risk,
        max_options: match p.max_options {
            0 => None,
            n if n as usize > MAX_LIST => {
                return Err(ApiError::invalid(
                    "policy.max_options",
                    format!("must be at most {MAX_LIST}, got {n}"),
                ));
            }
            n => Some(n as usize),
        },
    })
}

fn recommendation(r: Recommendation) -> pb::Recommendation {
    pb::Recommendation {
        entity_id: r.entity_id,
        options: r
            .options
            .into_iter()
            .map(|o| pb::RecommendedOption {
                needs_approval: o.needs_approval(),
                option: o.option,
                rank: o.rank,
                baseline: o.baseline,
                risk: o.criteria.risk,
                risk_removed: o.risk_removed,
                cost: o.criteria.cost,
                cost_delta: o.cost_delta,
                time_impact_hours: o.time_impact_hours,
                criteria: Some(pb::Criteria {
                    risk: o.criteria.risk,
                    cost: o.criteria.cost,
                    time_hours: o.criteria.time_hours,
                    distance_km: finite_or_zero(o.criteria.distance_km),
                    expected_cost: o.criteria.expected_cost,
                }),
                reasons: o.reasons,
                approval_reasons: o.approval_reasons,
                split: o
                    .split
                    .into_iter()
                    .map(|(site, skus)| pb::SplitPart { site, skus })
                    .collect(),
            })
            .collect(),
        rejected: r
            .rejected
            .into_iter()
            .map(|x| pb::RejectedOption {
                option: x.option,
                reason: x.reason,
            })
            .collect(),
        promise_adjustment: r.promise_adjustment.map(|p| pb::PromiseAdjustment {
            new_promise: Some(convert::wire_time(p.new_promise)),
            reason: p.reason,
            needs_approval: true,
        }),
        notes: r.notes,
        degraded: !r.degraded_reasons.is_empty(),
        degraded_reasons: r.degraded_reasons,
        model_name: r.model_name,
        model_version: r.model_version,
    }
}

/// JSON has no NaN: an unknown distance is sent as 0.
fn finite_or_zero(value: f64) -> f64 {
    if value.is_finite() { value } else { 0.0 }
}
