//! `detour-load`: a closed-loop load generator for a running Detour server.
//!
//! `--concurrency` workers each send back to back until `--requests` in total or
//! `--duration` seconds have passed (whichever first; both are bounded), after a
//! `--warmup`. Reports throughput (requests and items per second) and latency
//! percentiles, as text or one JSON line. Only loopback targets are accepted.
//!
//! Modes: `health` (the gRPC floor: an almost empty unary call), `unary`
//! (ScoreShipment), `batch` (ScoreBatch of `--batch` shipments), `stream`
//! (ScoreStream, `--batch` items per request slot), `ingest` (IngestEvents of
//! `--batch` new shipment events), `reroute`, `reallocate`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use detour::network::Network;
use detour::pb;
use tonic::transport::Channel;

/// The server's allocator, so that the client's own allocations weigh no more
/// than they must on the machine the two share.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    Health,
    Unary,
    Batch,
    Stream,
    Ingest,
    Reroute,
    Reallocate,
    /// A V2 inference server (MLServer, Triton): `ModelInfer` of `--batch` rows
    /// of `--v2-features` FP32 values, raw-encoded, as the peer's own load
    /// generator sends them.
    V2,
}

/// Drives a running Detour server and reports throughput and latency.
#[derive(Debug, Parser)]
struct Args {
    /// Server address (loopback only).
    #[arg(long, default_value = "127.0.0.1:50051")]
    target: SocketAddr,
    #[arg(long, value_enum, default_value = "unary")]
    mode: Mode,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Stop after this many requests in total (measured phase).
    #[arg(long, default_value_t = 200_000)]
    requests: u64,
    /// Stop after this many seconds (measured phase).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Items per request in batch, stream and ingest modes.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Network to draw lanes, carriers and sites from.
    #[arg(long, default_value = "models/network.toml")]
    network: PathBuf,
    /// Print one JSON line instead of text.
    #[arg(long)]
    json: bool,
    /// Channels (HTTP/2 connections) the workers share.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Client threads. One (a current-thread runtime) costs the machine least,
    /// leaving the other cores to the server under test and its Redis.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// V2 mode: model name and version.
    #[arg(long, default_value = "gbc")]
    v2_model: String,
    #[arg(long, default_value = "1")]
    v2_version: String,
    /// V2 mode: features per row.
    #[arg(long, default_value_t = 20)]
    v2_features: usize,
}

#[derive(Debug, serde::Serialize)]
struct Report {
    mode: Mode,
    concurrency: usize,
    batch: usize,
    requests: u64,
    errors: u64,
    seconds: f64,
    requests_per_second: f64,
    items_per_second: f64,
    p50_us: f64,
    p90_us: f64,
    p99_us: f64,
    max_us: f64,
    first_error: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.threads >= 1, "threads must be at least 1");
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(args.threads);
        builder
    }
    .enable_all()
    .build()
    .context("starting the async runtime")?;
    runtime.block_on(drive(args))
}

async fn drive(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.target.ip().is_loopback(),
        "only loopback targets are allowed"
    );
    anyhow::ensure!(
        args.concurrency > 0 && args.batch > 0,
        "concurrency and batch must be > 0"
    );
    anyhow::ensure!(
        args.duration > 0.0 && args.duration <= 900.0,
        "duration must be in (0, 900] s"
    );
    let network = if args.mode == Mode::V2 {
        Network::default()
    } else {
        Network::load(&args.network).context("reading the network")?
    };
    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        channels.push(
            Channel::from_shared(format!("http://{}", args.target))?
                .tcp_nodelay(true)
                .connect()
                .await
                .context("connecting")?,
        );
    }
    let mut requests = Requests::new(&network, args.batch);
    if args.mode == Mode::V2 {
        requests.v2 = v2::requests(
            &args.v2_model,
            &args.v2_version,
            args.batch,
            args.v2_features,
        );
    }
    let requests = Arc::new(requests);
    if args.mode == Mode::Reallocate {
        seed_inventory(&channels[0], &network, &requests).await?;
    }
    let warm_until = Instant::now() + Duration::from_secs_f64(args.warmup);
    let mut workers = Vec::new();
    let sent = Arc::new(AtomicU64::new(0));
    let started = warm_until;
    let stop_at = started + Duration::from_secs_f64(args.duration);
    for worker in 0..args.concurrency {
        let channel = channels[worker % channels.len()].clone();
        let requests = Arc::clone(&requests);
        let sent = Arc::clone(&sent);
        let (mode, limit) = (args.mode, args.requests);
        let concurrency = args.concurrency as u64;
        workers.push(tokio::spawn(async move {
            let mut client = Client::new(channel, mode);
            let mut latencies = Vec::with_capacity(4096);
            let (mut errors, mut first_error) = (0u64, None);
            let mut i = worker as u64;
            loop {
                let now = Instant::now();
                if now >= stop_at {
                    break;
                }
                let measured = now >= started;
                if measured && sent.fetch_add(1, Ordering::Relaxed) >= limit {
                    break;
                }
                let began = Instant::now();
                let result = client.send(&requests, i).await;
                let took = began.elapsed();
                // Workers take interleaved numbers, so ingest event ids never collide.
                i += concurrency;
                if !measured {
                    continue;
                }
                match result {
                    Ok(()) => latencies.push(took.as_micros() as u32),
                    Err(error) => {
                        errors += 1;
                        first_error.get_or_insert(error);
                    }
                }
            }
            (latencies, errors, first_error)
        }));
    }
    let mut latencies = Vec::new();
    let (mut errors, mut first_error) = (0, None);
    for worker in workers {
        let (l, e, f) = worker.await?;
        latencies.extend(l);
        errors += e;
        if first_error.is_none() {
            first_error = f;
        }
    }
    let seconds = started.elapsed().as_secs_f64().min(args.duration).max(1e-9);
    latencies.sort_unstable();
    let pct = |q: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        latencies[((latencies.len() - 1) as f64 * q).round() as usize] as f64
    };
    let items = match args.mode {
        Mode::Batch | Mode::Stream | Mode::Ingest | Mode::V2 => args.batch as f64,
        _ => 1.0,
    };
    let done = latencies.len() as u64;
    let report = Report {
        mode: args.mode,
        concurrency: args.concurrency,
        batch: if items > 1.0 { args.batch } else { 1 },
        requests: done,
        errors,
        seconds,
        requests_per_second: done as f64 / seconds,
        items_per_second: done as f64 * items / seconds,
        p50_us: pct(0.50),
        p90_us: pct(0.90),
        p99_us: pct(0.99),
        max_us: latencies.last().map_or(f64::NAN, |v| *v as f64),
        first_error,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{:?} c={} batch={}: {} requests in {:.2} s ({} errors) — {:.0} req/s, {:.0} items/s; \
             latency µs p50 {:.0} p90 {:.0} p99 {:.0} max {:.0}",
            report.mode,
            report.concurrency,
            report.batch,
            report.requests,
            report.seconds,
            report.errors,
            report.requests_per_second,
            report.items_per_second,
            report.p50_us,
            report.p90_us,
            report.p99_us,
            report.max_us
        );
        if let Some(error) = &report.first_error {
            println!("first error: {error}");
        }
    }
    Ok(())
}

/// Gives every site stock of the SKUs the reallocation requests ask for, so that
/// every site is a real candidate.
async fn seed_inventory(
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

/// Pre-built request bodies, cycled through by every worker.
struct Requests {
    shipments: Vec<pb::Shipment>,
    orders: Vec<pb::Order>,
    batch: usize,
    /// Makes ingest event ids unique across runs.
    run: u128,
    /// Pre-encoded V2 requests (V2 mode only).
    v2: Vec<v2::ModelInferRequest>,
}

impl Requests {
    fn new(network: &Network, batch: usize) -> Self {
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
            v2: Vec::new(),
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

/// One worker's clients.
struct Client {
    mode: Mode,
    scoring: pb::risk_scoring_client::RiskScoringClient<Channel>,
    ingest: pb::event_ingest_client::EventIngestClient<Channel>,
    recommendations: pb::recommendations_client::RecommendationsClient<Channel>,
    health: tonic_health::pb::health_client::HealthClient<Channel>,
    v2: tonic::client::Grpc<Channel>,
}

impl Client {
    fn new(channel: Channel, mode: Mode) -> Self {
        Client {
            mode,
            scoring: pb::risk_scoring_client::RiskScoringClient::new(channel.clone()),
            ingest: pb::event_ingest_client::EventIngestClient::new(channel.clone()),
            recommendations: pb::recommendations_client::RecommendationsClient::new(
                channel.clone(),
            ),
            health: tonic_health::pb::health_client::HealthClient::new(channel.clone()),
            v2: tonic::client::Grpc::new(channel),
        }
    }

    async fn send(&mut self, requests: &Requests, i: u64) -> Result<(), String> {
        let status = |e: tonic::Status| format!("{:?}: {}", e.code(), e.message());
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
                        let mut shipment = requests.shipment(i * 131 + k);
                        shipment.status = pb::ShipmentStatus::Delivered as i32;
                        shipment.actual_arrival = shipment.scheduled_arrival;
                        pb::Event {
                            event_id: format!("load-{}-{i}-{k}", requests.run),
                            payload: Some(pb::event::Payload::Shipment(shipment)),
                        }
                    })
                    .collect();
                let answer = self
                    .ingest
                    .ingest_events(pb::IngestEventsRequest { events })
                    .await
                    .map_err(status)?;
                if answer.get_ref().accepted as usize != requests.batch {
                    return Err(format!("ingest answered {:?}", answer.get_ref()));
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
            Mode::V2 => {
                let request = requests.v2[i as usize % requests.v2.len()].clone();
                let answer = v2::infer(&mut self.v2, request).await.map_err(status)?;
                if answer
                    .outputs
                    .first()
                    .is_none_or(|o| o.shape.first() != Some(&(requests.batch as i64)))
                {
                    return Err(format!("unexpected V2 answer shape: {:?}", answer.outputs));
                }
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
        }
        Ok(())
    }
}

/// The few messages of the open V2 inference protocol (KServe / Triton /
/// MLServer, package `inference`) that this load generator sends and reads,
/// declared with prost's derive; unknown fields of the answer are skipped.
mod v2 {
    use tonic::codegen::http::uri::PathAndQuery;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelInferRequest {
        #[prost(string, tag = "1")]
        pub model_name: String,
        #[prost(string, tag = "2")]
        pub model_version: String,
        #[prost(message, repeated, tag = "5")]
        pub inputs: Vec<InferInputTensor>,
        #[prost(bytes = "vec", repeated, tag = "7")]
        pub raw_input_contents: Vec<Vec<u8>>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InferInputTensor {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub datatype: String,
        #[prost(int64, repeated, tag = "3")]
        pub shape: Vec<i64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelInferResponse {
        #[prost(message, repeated, tag = "5")]
        pub outputs: Vec<InferOutputTensor>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct InferOutputTensor {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(int64, repeated, tag = "3")]
        pub shape: Vec<i64>,
    }

    /// 64 distinct requests of `rows` × `features` pseudo-random FP32 values.
    pub fn requests(
        model: &str,
        version: &str,
        rows: usize,
        features: usize,
    ) -> Vec<ModelInferRequest> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        (0..64)
            .map(|_| {
                let mut raw = Vec::with_capacity(rows * features * 4);
                for _ in 0..rows * features {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let value = (state >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0;
                    raw.extend_from_slice(&value.to_le_bytes());
                }
                ModelInferRequest {
                    model_name: model.to_string(),
                    model_version: version.to_string(),
                    inputs: vec![InferInputTensor {
                        name: "input-0".into(),
                        datatype: "FP32".into(),
                        shape: vec![rows as i64, features as i64],
                    }],
                    raw_input_contents: vec![raw],
                }
            })
            .collect()
    }

    pub async fn infer(
        grpc: &mut tonic::client::Grpc<tonic::transport::Channel>,
        request: ModelInferRequest,
    ) -> Result<ModelInferResponse, tonic::Status> {
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let codec = tonic_prost::ProstCodec::<ModelInferRequest, ModelInferResponse>::default();
        let path = PathAndQuery::from_static("/inference.GRPCInferenceService/ModelInfer");
        Ok(grpc
            .unary(tonic::Request::new(request), path, codec)
            .await?
            .into_inner())
    }
}
