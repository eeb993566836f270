//! The codes a target's family needs the network to know, and the error for
//! one it does not: a site (its limit and capacity come from `network.toml`),
//! an order's site and destination region.

use super::ScoreTarget;
use crate::domain::Order;
use crate::domain::validate::echoed;
use crate::network::Network;

/// A code the family needs the network to know, and it does not: the answer
/// would be a guess about an entity that may not exist, so there is none.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {} is not a {what} of the network (network.toml){}", echoed(code),
        suggestion.as_ref().map_or(String::new(), |s| format!("; did you mean {s:?}?")))]
pub struct UnknownCode {
    /// The field, relative to the target ("site", "order.destination_region").
    pub field: &'static str,
    /// The code as given.
    pub code: String,
    /// "site" or "region".
    pub what: &'static str,
    /// A known code that differs only in case, if there is one.
    pub suggestion: Option<String>,
}

/// Checks the codes a target's family needs the network to know: a site's
/// (its limit and capacity come from there), an order's site and destination
/// region. A shipment's carrier and sites need not be in the network: the
/// carrier model reads their ingested records, and a carrier with none gets an
/// `Unknown` band instead.
pub fn check_codes(target: &ScoreTarget, network: &Network) -> Result<(), UnknownCode> {
    match target {
        ScoreTarget::Site { site, .. } => check_site("site", site, network),
        ScoreTarget::Order { order, .. } => check_order_codes(order, network),
        ScoreTarget::Shipment { .. } => Ok(()),
    }
}

/// An order's site and destination region must be in the network (scoring
/// and reallocation alike).
pub fn check_order_codes(order: &Order, network: &Network) -> Result<(), UnknownCode> {
    check_site("order.site", &order.site, network)?;
    match network.region(&order.destination_region) {
        Some(_) => Ok(()),
        None => Err(UnknownCode {
            field: "order.destination_region",
            code: order.destination_region.clone(),
            what: "region",
            suggestion: network
                .regions
                .iter()
                .find(|r| r.code.eq_ignore_ascii_case(&order.destination_region))
                .map(|r| r.code.clone()),
        }),
    }
}

fn check_site(field: &'static str, code: &str, network: &Network) -> Result<(), UnknownCode> {
    match network.site(code) {
        Some(_) => Ok(()),
        None => Err(UnknownCode {
            field,
            code: code.to_string(),
            what: "site",
            suggestion: network
                .sites
                .iter()
                .find(|s| s.code.eq_ignore_ascii_case(code))
                .map(|s| s.code.clone()),
        }),
    }
}
