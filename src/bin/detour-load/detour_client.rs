//! Detour's side: request bodies drawn from a network, built once and cycled
//! through, and a client that sends one of them over the RPC of a mode (and
//! checks its answer is whole). Knows nothing of timing or reporting.

use std::sync::Arc;

use anyhow::Context;
use detour::network::Network;
use detour::pb;
use tonic::transport::Channel;

use crate::Mode;

/// Pre-built request bodies, cycled through by every worker.
pub struct Requests {
    shipments: Vec<pb::Shipment>,
    orders: Vec<pb::Order>,
    batch: usize,
    /// Makes ingest event ids unique across runs.
    run: u128,
    /// Ingest draws its event and shipment ids from this many, cycling
    /// (re-deliveries once they are used up); 0: every id new.
    id_pool: u64,
    /// Where in the pool this run starts.
    id_offset: u64,
}

impl Requests {
    /// Bodies over the lanes, carriers and sites of `network`, `batch` items
    /// per request in batch, stream and ingest modes.
    pub fn new(network: &Network, batch: usize, id_pool: u64, id_offset: u64) -> Self {
        let lanes: Vec<(String, String, String, f64)> = network
            .carriers
            .iter()
            .flat_map(|c| {
                c.lanes.iter().map(move |l| {
                    (
                        c.code.clone(),
                        l.origin.clone(),
                        l.destination.clone(),
                        l.transit_hours,
                    )
                })
            })
            .collect();
        let shipments = (0..if lanes.is_empty() { 0 } else { 1024 })
            .map(|i| {
                let (carrier, origin, destination, transit) = &lanes[(i * 7919) % lanes.len()];
                let departure = 1_790_000_000_000i64 + (i as i64 % 48) * 3_600_000;
                let at = |ms: i64| {
                    Some(detour::api::convert::wire_time(detour::domain::Timestamp(
                        ms,
                    )))
                };
                pb::Shipment {
                    shipment_id: format!("L{i}"),
                    carrier: carrier.clone(),
                    origin: origin.clone(),
                    destination: destination.clone(),
                    scheduled_departure: at(departure),
                    scheduled_arrival: at(departure + (*transit * 3_600_000.0) as i64),
                    ..Default::default()
                }
            })
            .collect();
        let orders = (0..if network.sites.is_empty() { 0 } else { 256 })
            .map(|i| {
                let site = &network.sites[i % network.sites.len()].code;
                let region = &network.regions[(i * 31) % network.regions.len().max(1)].code;
                pb::Order {
                    shipped_at: Default::default(),
                    allocated_at: Default::default(),
                    picked_at: Default::default(),
                    released_at: Default::default(),
                    order_id: format!("LO{i}"),
                    created_at: "2026-09-01T10:00:00Z".parse().ok(),
                    channel: "web".into(),
                    site: site.clone(),
                    destination_region: region.clone(),
                    promise_at: "2026-09-03T10:00:00Z".parse().ok(),
                    line_count: 2,
                    units: 3.0,
                    priority: pb::OrderPriority::Standard as i32,
                    outcome: 0,
                }
            })
            .collect();
        let run = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Requests {
            shipments,
            orders,
            batch,
            run,
            id_pool,
            id_offset,
        }
    }

    fn shipment(&self, i: u64) -> pb::Shipment {
        self.shipments[i as usize % self.shipments.len()].clone()
    }

    fn items(&self, i: u64) -> Vec<pb::ScoreItem> {
        (0..self.batch as u64)
            .map(|k| pb::ScoreItem {
                request_id: String::new(),
                entity: Some(pb::score_item::Entity::Shipment(pb::ScoreShipmentRequest {
                    shipment: Some(self.shipment(i * 131 + k)),
                    as_of: None,
                })),
            })
            .collect()
    }
}

/// Gives every site stock of the SKUs the reallocation requests ask for, so that
/// every site is a real candidate.
pub async fn seed_inventory(
    channel: &Channel,
    network: &Network,
    requests: &Requests,
) -> anyhow::Result<()> {
    let mut client = pb::event_ingest_client::EventIngestClient::new(channel.clone());
    let events = network
        .sites
        .iter()
        .flat_map(|site| {
            ["SKU-1", "SKU-2"].map(|sku| pb::Event {
                event_id: format!("load-stock-{}-{}-{sku}", requests.run, site.code),
                payload: Some(pb::event::Payload::Inventory(pb::InventoryPosition {
                    site: site.code.clone(),
                    sku: sku.into(),
                    on_hand: 100.0,
                    at: "2026-09-01T00:00:00Z".parse().ok(),
                })),
            })
        })
        .collect();
    client
        .ingest_events(pb::IngestEventsRequest { events })
        .await
        .context("seeding inventory")?;
    Ok(())
}

/// One worker's clients of Detour's services.
pub struct Client {
    mode: Mode,
    requests: Arc<Requests>,
    scoring: pb::risk_scoring_client::RiskScoringClient<Channel>,
    ingest: pb::event_ingest_client::EventIngestClient<Channel>,
    recommendations: pb::recommendations_client::RecommendationsClient<Channel>,
    health: tonic_health::pb::health_client::HealthClient<Channel>,
}

impl Client {
    /// A client for `mode` (any mode but V2) over `channel`.
    pub fn new(channel: Channel, mode: Mode, requests: Arc<Requests>) -> Self {
        Client {
            mode,
            requests,
            scoring: pb::risk_scoring_client::RiskScoringClient::new(channel.clone()),
            ingest: pb::event_ingest_client::EventIngestClient::new(channel.clone()),
            recommendations: pb::recommendations_client::RecommendationsClient::new(
                channel.clone(),
            ),
            health: tonic_health::pb::health_client::HealthClient::new(channel),
        }
    }

    /// Sends the `i`-th request of the mode; an error if the call fails or its
    /// answer is short.
    pub async fn send(&mut self, i: u64) -> Result<(), String> {
        let status = |e: tonic::Status| format!("{:?}: {}", e.code(), e.message());
        let requests = &*self.requests;
        match self.mode {
            Mode::Health => {
                let request = tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                };
                self.health.check(request).await.map_err(status)?;
            }
            Mode::Unary => {
                let request = pb::ScoreShipmentRequest {
                    shipment: Some(requests.shipment(i)),
                    as_of: None,
                };
                self.scoring.score_shipment(request).await.map_err(status)?;
            }
            Mode::Batch => {
                let request = pb::ScoreBatchRequest {
                    items: requests.items(i),
                };
                let answer = self.scoring.score_batch(request).await.map_err(status)?;
                if answer.get_ref().results.len() != requests.batch {
                    return Err("short batch answer".into());
                }
            }
            Mode::Stream => {
                let items = requests.items(i);
                let answers = self
                    .scoring
                    .score_stream(tokio_stream::iter(items))
                    .await
                    .map_err(status)?;
                let mut answers = answers.into_inner();
                let mut n = 0;
                while let Some(answer) = answers.message().await.map_err(status)? {
                    if !matches!(answer.outcome, Some(pb::score_result::Outcome::Score(_))) {
                        return Err(format!("stream item failed: {answer:?}"));
                    }
                    n += 1;
                }
                if n != requests.batch {
                    return Err("short stream answer".into());
                }
            }
            Mode::Ingest => {
                let events = (0..requests.batch as u64)
                    .map(|k| {
                        // A new leg each time: its own id, as real traffic
                        // brings; from a pool, ids come round again.
                        let mut shipment = requests.shipment(i * 131 + k);
                        let id = match requests.id_pool {
                            0 => format!("load-{}-{i}-{k}", requests.run),
                            pool => format!(
                                "pool-{}",
                                (requests.id_offset + i * requests.batch as u64 + k) % pool
                            ),
                        };
                        shipment.shipment_id = id.clone();
                        shipment.status = pb::ShipmentStatus::Delivered as i32;
                        shipment.actual_arrival = shipment.scheduled_arrival;
                        pb::Event {
                            event_id: id,
                            payload: Some(pb::event::Payload::Shipment(shipment)),
                        }
                    })
                    .collect();
                let answer = self
                    .ingest
                    .ingest_events(pb::IngestEventsRequest { events })
                    .await
                    .map_err(status)?;
                // Every event applied, or (from a pool) known already.
                let answer = answer.get_ref();
                if (answer.accepted + answer.duplicate) as usize != requests.batch
                    || answer.rejected > 0
                {
                    return Err(format!("ingest answered {answer:?}"));
                }
            }
            Mode::Reroute => {
                let request = pb::RecommendRerouteRequest {
                    subject: Some(pb::recommend_reroute_request::Subject::Shipment(
                        requests.shipment(i),
                    )),
                    ..Default::default()
                };
                self.recommendations
                    .recommend_reroute(request)
                    .await
                    .map_err(status)?;
            }
            Mode::Reallocate => {
                let order = requests.orders[i as usize % requests.orders.len()].clone();
                let request = pb::RecommendReallocationRequest {
                    subject: Some(pb::recommend_reallocation_request::Subject::Order(order)),
                    lines: vec![
                        pb::OrderLine {
                            sku: "SKU-1".into(),
                            quantity: 1.0,
                        },
                        pb::OrderLine {
                            sku: "SKU-2".into(),
                            quantity: 2.0,
                        },
                    ],
                    ..Default::default()
                };
                self.recommendations
                    .recommend_reallocation(request)
                    .await
                    .map_err(status)?;
            }
            Mode::V2 | Mode::Alerts => return Err("not a request of this client".into()),
        }
        Ok(())
    }
}
