//! The loaded model of each family. Loading checks every artifact before any is
//! used, so a server never starts with a partial set.

use std::path::Path;

use crate::domain::RiskKind;
use crate::features::vectors::{
    CARRIER_FAILURE_FEATURES, FeatureDef, ORDER_FALLOUT_FEATURES, SITE_CONGESTION_FEATURES,
};
use crate::models::{LoadedModel, ModelError, load_model};

/// The feature schema this build computes for a family.
pub fn schema_of(kind: RiskKind) -> &'static [FeatureDef] {
    match kind {
        RiskKind::OrderFallout => ORDER_FALLOUT_FEATURES,
        RiskKind::SiteCongestion => SITE_CONGESTION_FEATURES,
        RiskKind::CarrierFailure => CARRIER_FAILURE_FEATURES,
    }
}

/// One loaded model per family.
#[derive(Debug, Clone)]
pub struct ModelRegistry {
    order_fallout: LoadedModel,
    site_congestion: LoadedModel,
    carrier_failure: LoadedModel,
}

impl ModelRegistry {
    /// Loads every family's artifact from `dir`.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let load = |kind| load_model(dir, kind, schema_of(kind));
        Ok(ModelRegistry {
            order_fallout: load(RiskKind::OrderFallout)?,
            site_congestion: load(RiskKind::SiteCongestion)?,
            carrier_failure: load(RiskKind::CarrierFailure)?,
        })
    }

    /// The model serving a family.
    pub fn model(&self, kind: RiskKind) -> &LoadedModel {
        match kind {
            RiskKind::OrderFallout => &self.order_fallout,
            RiskKind::SiteCongestion => &self.site_congestion,
            RiskKind::CarrierFailure => &self.carrier_failure,
        }
    }
}
