//! Reallocations: the sites that could fulfil an order instead of its current
//! one, ranked by expected cost, with the order-fallout model predicting each as
//! if the order had been assigned there. Hard constraints: the site holds the
//! stock for every line, its backlog is under its limit, a carrier serves the lane
//! to the destination, and the caller did not exclude it. When no single site can
//! fill the order, two sites splitting the lines are options too.

use crate::domain::{InventoryPosition, Order, Timestamp};
use crate::features::AggregateKey;
use crate::features::aggregates::{ON_HAND, site_fields as sf};
use crate::features::vectors::{self, Lookup};
use crate::models::LoadedModel;
use crate::network::Network;
use crate::schema::FeatureVector;

use super::{Criteria, Policy, Recommendation, Rejected, Scored, money_delta, rank};

/// One line of an order: how many units of which SKU.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderLine {
    /// The stock-keeping unit.
    pub sku: String,
    /// Units needed, within [0, 1e9] (the sum of the request's lines of this SKU).
    pub quantity: f64,
}

/// What a reallocation decision needs.
pub struct ReallocationInput<'a> {
    /// The order as currently placed.
    pub order: &'a Order,
    /// What the order needs.
    pub lines: &'a [OrderLine],
    /// Decision time.
    pub as_of: Timestamp,
    /// Site codes the caller ruled out.
    pub excluded: &'a [String],
    /// Stock positions given with the request; they win over ingested ones.
    pub stock: &'a [InventoryPosition],
    /// Sites, lanes and locations the candidates come from.
    pub network: &'a Network,
    /// The order-fallout model of the request's snapshot.
    pub model: &'a LoadedModel,
    /// The records the caller read, by key.
    pub lookup: &'a dyn Fn(&AggregateKey) -> Lookup<'a>,
    /// Costs and limits of the ranking.
    pub policy: Policy,
}

/// The candidate sites: every site in the network, and the current one.
pub fn candidate_sites(order: &Order, network: &Network) -> Vec<String> {
    let mut sites: Vec<String> = network.sites.iter().map(|s| s.code.clone()).collect();
    if !sites.contains(&order.site) {
        sites.push(order.site.clone());
    }
    sites
}

/// The order as it would be at another site.
pub fn at_site(order: &Order, site: &str) -> Order {
    Order {
        site: site.to_string(),
        ..order.clone()
    }
}

/// Every record the ranking reads.
pub fn keys(order: &Order, lines: &[OrderLine], network: &Network) -> Vec<AggregateKey> {
    let mut keys = Vec::new();
    for site in candidate_sites(order, network) {
        keys.extend(vectors::order_keys(&at_site(order, &site)));
        keys.extend(lines.iter().map(|l| AggregateKey::inventory(&site, &l.sku)));
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// A site that passed the hard constraints (or is the baseline).
struct SiteOption {
    site: String,
    baseline: bool,
    /// Indexes of the lines it holds.
    holds: Vec<usize>,
    risk: f64,
    cost: f64,
    arrival: Timestamp,
    distance_km: f64,
    /// The baseline is kept even when it breaks a constraint (no lane, over
    /// capacity); such a site can never be half of a split.
    breaks_constraint: bool,
    /// What the reasons will say; formatted only for the options returned.
    facts: Vec<Fact>,
}

/// One thing worth telling the planner about a site.
#[derive(Debug, Clone, PartialEq)]
enum Fact {
    ExcludedBaseline,
    NoLane,
    OverLimit { backlog: f64, limit: f64 },
    Backlog { backlog: f64, limit: f64 },
    BacklogNoLimit { backlog: f64 },
    NoSnapshot,
    HoldsAll { lines: usize },
    Lacks { sku: String, needs: f64, has: f64 },
    NoStock { sku: String },
    Transit { hours: f64, against_promise: f64 },
    Risk { risk: f64 },
}

impl Fact {
    fn describe(&self, site: &str, region: &str) -> String {
        match self {
            Fact::ExcludedBaseline => "excluded by the request (listed as the current plan)".into(),
            Fact::NoLane => {
                format!(
                    "no carrier in network.toml serves {site}→{region}; cost and transit unknown"
                )
            }
            Fact::OverLimit { backlog, limit } => {
                format!("backlog {backlog:.0} orders is over its limit of {limit:.0}")
            }
            Fact::Backlog { backlog, limit } => format!(
                "backlog {backlog:.0} orders, {:.0}% of its limit",
                backlog / limit * 100.0
            ),
            Fact::BacklogNoLimit { backlog } => {
                format!("backlog {backlog:.0} orders (limit unknown)")
            }
            Fact::NoSnapshot => format!("no recent snapshot of {site}; capacity unchecked"),
            Fact::HoldsAll { lines } => format!("holds all {lines} lines"),
            Fact::Lacks { sku, needs, has } => format!("lacks {sku} (needs {needs}, has {has})"),
            Fact::NoStock { sku } => format!("no stock known for {sku}"),
            Fact::Transit {
                hours,
                against_promise,
            } => format!(
                "{site}→{region} fastest transit {hours:.0} h; expected arrival \
                 {against_promise:+.1} h against the promise"
            ),
            Fact::Risk { risk } => format!("predicted fallout risk {:.0}%", risk * 100.0),
        }
    }
}

/// Ranks the sites for an order.
pub fn reallocation(input: &ReallocationInput<'_>) -> Recommendation {
    let order = input.order;
    let mut notes = Vec::new();
    let mut degraded = Vec::new();
    let mut rejected = Vec::new();
    if input.lines.is_empty() {
        notes.push("no lines were given, so stock was not checked".to_string());
    }
    let mut options: Vec<SiteOption> = Vec::new();
    for site in candidate_sites(order, input.network) {
        let baseline = site == order.site;
        // A site holding only some lines is kept: it may be half of a split.
        match evaluate_site(input, &site, baseline, &mut degraded) {
            Ok(option) => options.push(option),
            Err(reason) => rejected.push(Rejected {
                option: site,
                reason,
            }),
        }
    }
    let full = |o: &SiteOption| o.holds.len() == input.lines.len();
    predict_needed(&mut options, input, full);
    let mut scored: Vec<Scored> = options
        .iter()
        .filter(|o| o.baseline || (full(o) && !o.risk.is_nan()))
        .map(|o| single(o, input))
        .collect();
    for o in options.iter().filter(|o| !o.baseline && !full(o)) {
        rejected.push(Rejected {
            option: o.site.clone(),
            reason: format!("holds {} of the {} lines", o.holds.len(), input.lines.len()),
        });
    }
    if !options.iter().any(|o| full(o) && !o.breaks_constraint) {
        let splits = splits(&options, input);
        if splits.is_empty() {
            notes.push(
                "no site, alone or split across two, holds the stock for every line".to_string(),
            );
        }
        scored.extend(splits);
    }
    rejected.sort_by(|a, b| a.option.cmp(&b.option));
    let mut ranked = rank(scored, &input.policy, order.promise_at);
    for option in ranked.iter_mut().filter(|o| o.split.is_empty()) {
        if let Some(site) = options.iter().find(|s| s.site == option.option) {
            option.reasons = site
                .facts
                .iter()
                .map(|f| f.describe(&site.site, &order.destination_region))
                .collect();
        }
    }
    Recommendation {
        entity_id: order.order_id.clone(),
        options: ranked,
        rejected,
        promise_adjustment: None,
        notes,
        degraded_reasons: degraded,
        model_name: input.model.manifest.name.clone(),
        model_version: input.model.manifest.version.clone(),
    }
}

/// Predicts risk where the answer can depend on it: the baseline; full sites in
/// order of cost until the next one's cost alone exceeds the worst expected cost
/// still among the best `max_options` (it could not enter them, so it is never
/// scored — the result is the same as scoring all); and, when no site can fill
/// the order alone, every site that could be half of a split.
fn predict_needed(
    options: &mut [SiteOption],
    input: &ReallocationInput<'_>,
    full: impl Fn(&SiteOption) -> bool,
) {
    let predict = |options: &mut [SiteOption], indexes: &[usize]| {
        let mut ignored = vectors::Gaps::default();
        let vectors: Vec<FeatureVector> = indexes
            .iter()
            .map(|&i| site_features(input, &options[i].site, &mut ignored))
            .collect();
        for (&i, risk) in indexes.iter().zip(input.model.probabilities(&vectors)) {
            options[i].risk = risk;
            options[i].facts.push(Fact::Risk { risk });
        }
    };
    let any_full = options.iter().any(|o| full(o) && !o.breaks_constraint);
    let mut first: Vec<usize> = (0..options.len())
        .filter(|&i| options[i].baseline || (!any_full && !options[i].holds.is_empty()))
        .collect();
    predict(options, &first);
    let mut by_cost: Vec<usize> = (0..options.len())
        .filter(|&i| !options[i].baseline && full(&options[i]))
        .collect();
    by_cost.sort_by(|&a, &b| {
        options[a]
            .cost
            .total_cmp(&options[b].cost)
            .then(options[a].site.cmp(&options[b].site))
    });
    let keep = input.policy.max_options.max(1);
    let mut best: Vec<f64> = Vec::new();
    for chunk in by_cost.chunks(8) {
        if best.len() >= keep && options[chunk[0]].cost > best[keep - 1] {
            break;
        }
        first.clear();
        first.extend_from_slice(chunk);
        predict(options, &first);
        for &i in chunk {
            best.push(options[i].cost + options[i].risk * input.policy.failure_cost);
        }
        best.sort_by(f64::total_cmp);
    }
}

/// The order-fallout features of the order as if assigned to `site`.
fn site_features(
    input: &ReallocationInput<'_>,
    site: &str,
    gaps: &mut vectors::Gaps,
) -> FeatureVector {
    let hypothetical = at_site(input.order, site);
    let keys = vectors::order_keys(&hypothetical);
    vectors::order_fallout_vector(
        &hypothetical,
        input.as_of,
        keys.each_ref().map(|k| (input.lookup)(k)),
        input.network,
        gaps,
    )
}

/// Checks a site's hard constraints (its features and risk come later, see
/// [`predict_needed`]). The baseline is never rejected: its problems
/// become reasons instead.
fn evaluate_site(
    input: &ReallocationInput<'_>,
    site: &str,
    baseline: bool,
    degraded: &mut Vec<String>,
) -> Result<SiteOption, String> {
    let order = input.order;
    let mut facts = Vec::new();
    let mut breaks_constraint = false;
    if input.excluded.iter().any(|e| e == site) {
        if !baseline {
            return Err("excluded by the request".into());
        }
        breaks_constraint = true;
        facts.push(Fact::ExcludedBaseline);
    }
    let offers = input.network.offers(site, &order.destination_region);
    let cheapest = offers.iter().map(|o| o.lane.rate).min_by(f64::total_cmp);
    let transit = input
        .network
        .fastest_transit_hours(site, &order.destination_region);
    let (rate, transit_hours) = match (cheapest, transit) {
        (Some(rate), Some(transit)) => (rate, transit),
        _ if baseline => {
            breaks_constraint = true;
            facts.push(Fact::NoLane);
            (0.0, 0.0)
        }
        _ => {
            return Err(format!(
                "no carrier serves {site}→{}",
                order.destination_region
            ));
        }
    };
    let site_key = AggregateKey::site(site);
    let record = (input.lookup)(&site_key).flatten();
    let backlog = record.and_then(|r| r.gauge(sf::BACKLOG)).map(|(v, _)| v);
    let limit = input.network.site(site).map(|s| s.backlog_limit);
    match (backlog, limit) {
        (Some(backlog), Some(limit)) if backlog >= limit => {
            let fact = Fact::OverLimit { backlog, limit };
            if !baseline {
                return Err(fact.describe(site, &order.destination_region));
            }
            breaks_constraint = true;
            facts.push(fact);
        }
        (Some(backlog), Some(limit)) => facts.push(Fact::Backlog { backlog, limit }),
        (None, _) => facts.push(Fact::NoSnapshot),
        (Some(backlog), None) => facts.push(Fact::BacklogNoLimit { backlog }),
    }
    let mut holds = Vec::new();
    for (i, line) in input.lines.iter().enumerate() {
        match on_hand(input, site, &line.sku) {
            Some(units) if units >= line.quantity => holds.push(i),
            // Only the baseline's shortfalls are told: other sites are rejected.
            Some(units) if baseline => facts.push(Fact::Lacks {
                sku: line.sku.clone(),
                needs: line.quantity,
                has: units,
            }),
            None if baseline => facts.push(Fact::NoStock {
                sku: line.sku.clone(),
            }),
            _ => {}
        }
    }
    if !input.lines.is_empty() && holds.len() == input.lines.len() {
        facts.push(Fact::HoldsAll {
            lines: input.lines.len(),
        });
    }
    if baseline {
        // Only the baseline's feature gaps describe the request's own data.
        let mut gaps = vectors::Gaps::default();
        site_features(input, site, &mut gaps);
        degraded.extend(gaps.reasons);
    }
    let queue_hours = match (backlog, input.network.site(site)) {
        (Some(b), Some(s)) => b / s.capacity_per_hour,
        _ => 0.0,
    };
    let arrival = input
        .as_of
        .plus_minutes((queue_hours + transit_hours) * 60.0);
    facts.push(Fact::Transit {
        hours: transit_hours,
        against_promise: arrival.hours_since(order.promise_at),
    });
    let handling = input.network.site(site).map_or(0.0, |s| s.handling_cost);
    Ok(SiteOption {
        site: site.to_string(),
        baseline,
        holds,
        // Predicted later, for the sites that can matter.
        risk: f64::NAN,
        cost: rate + handling,
        arrival,
        distance_km: input
            .network
            .distance_km(site, &order.destination_region)
            .unwrap_or(f64::NAN),
        breaks_constraint,
        facts,
    })
}

/// Units of `sku` at `site`: the request's figure, else the ingested one.
fn on_hand(input: &ReallocationInput<'_>, site: &str, sku: &str) -> Option<f64> {
    if let Some(position) = input.stock.iter().find(|p| p.site == site && p.sku == sku) {
        return Some(position.on_hand);
    }
    (input.lookup)(&AggregateKey::inventory(site, sku))
        .flatten()
        .and_then(|r| r.gauge(ON_HAND))
        .map(|(units, _)| units)
}

fn single(o: &SiteOption, input: &ReallocationInput<'_>) -> Scored {
    Scored {
        option: o.site.clone(),
        baseline: o.baseline,
        criteria: Criteria {
            risk: o.risk,
            cost: o.cost,
            time_hours: o.arrival.hours_since(input.as_of),
            distance_km: o.distance_km,
            expected_cost: o.cost + o.risk * input.policy.failure_cost,
        },
        arrival: o.arrival,
        // Filled in after ranking, for the options returned only.
        reasons: Vec::new(),
        split: Vec::new(),
    }
}

/// Two sites that between them hold every line: the first ships what it holds,
/// the second the rest. Each part must succeed, so risks combine.
fn splits(options: &[SiteOption], input: &ReallocationInput<'_>) -> Vec<Scored> {
    let eligible: Vec<&SiteOption> = options
        .iter()
        .filter(|o| !o.holds.is_empty() && !o.breaks_constraint)
        .collect();
    let mut out = Vec::new();
    for (i, a) in eligible.iter().enumerate() {
        for b in &eligible[i + 1..] {
            let (first, second) = if a.holds.len() >= b.holds.len() {
                (a, b)
            } else {
                (b, a)
            };
            let rest: Vec<usize> = (0..input.lines.len())
                .filter(|l| !first.holds.contains(l))
                .collect();
            if rest.is_empty() || !rest.iter().all(|l| second.holds.contains(l)) {
                continue;
            }
            let skus = |ids: &[usize]| -> Vec<String> {
                ids.iter().map(|&l| input.lines[l].sku.clone()).collect()
            };
            let cost = first.cost + second.cost;
            let risk = 1.0 - (1.0 - first.risk) * (1.0 - second.risk);
            let arrival = first.arrival.max(second.arrival);
            out.push(Scored {
                option: format!("{}+{}", first.site, second.site),
                baseline: false,
                criteria: Criteria {
                    risk,
                    cost,
                    time_hours: arrival.hours_since(input.as_of),
                    distance_km: first.distance_km.max(second.distance_km),
                    expected_cost: cost + risk * input.policy.failure_cost,
                },
                arrival,
                reasons: vec![
                    format!(
                        "split: {} ships {}, {} ships {}",
                        first.site,
                        skus(&first.holds).join(", "),
                        second.site,
                        skus(&rest).join(", ")
                    ),
                    format!(
                        "a second shipment costs {} than one from {} alone",
                        money_delta(second.cost),
                        first.site
                    ),
                    format!(
                        "predicted fallout risk {:.0}% (both parts on time)",
                        risk * 100.0
                    ),
                ],
                split: vec![
                    (first.site.clone(), skus(&first.holds)),
                    (second.site.clone(), skus(&rest)),
                ],
            });
        }
    }
    out
}
