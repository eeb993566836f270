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
//! `--batch` new shipment events), `reroute`, `reallocate`, and `v2` (the peer:
//! `ModelInfer` of a V2 inference server), and `alerts` (how long an alert
//! takes to reach a `WatchAnomalies` subscriber; `--watchers` holds idle
//! subscribers open during any mode).
//!
//! The parts: `detour_client` (Detour's requests and RPCs), `v2` (the peer's
//! protocol and client), `worker` (the closed loop of one worker) and `report`
//! (percentiles and the output line). This file reads the command line and
//! wires them.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use detour::network::Network;
use tonic::transport::Channel;

mod alerts;
mod detour_client;
mod report;
mod v2;
mod worker;

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
    /// Alert delivery: from an ingest call's answer to the alert it opened
    /// arriving on a `WatchAnomalies` stream (one round at a time).
    Alerts,
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
    /// Requests per second of each worker, paced (an open loop at a moderate
    /// rate, as in a soak); 0 sends back to back.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Ingest mode: draw event and shipment ids from a pool of this many,
    /// cycling (re-deliveries once it is used up); 0 makes every id new.
    #[arg(long, default_value_t = 0)]
    id_pool: u64,
    /// Ingest mode with `--id-pool`: where in the pool this run starts (a
    /// series of runs continues the cycle).
    #[arg(long, default_value_t = 0)]
    id_offset: u64,
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
    /// Alerts mode: subscribe on this server instead of `--target` (another
    /// replica on the same Redis; loopback only).
    #[arg(long)]
    watch_target: Option<SocketAddr>,
    /// `WatchAnomalies` subscribers held open (idle, live) during the run.
    #[arg(long, default_value_t = 0)]
    watchers: usize,
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
    anyhow::ensure!(
        args.rate >= 0.0 && args.rate <= 1e6,
        "rate must be in [0, 1e6] requests per second"
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
    anyhow::ensure!(args.watchers <= 20_000, "at most 20,000 watchers");
    alerts::hold_watchers(&channels, args.watchers).await?;
    if args.mode == Mode::Alerts {
        let started = Instant::now();
        let stop_at = started + Duration::from_secs_f64(args.duration);
        let watch = match args.watch_target {
            Some(addr) => {
                anyhow::ensure!(addr.ip().is_loopback(), "only loopback targets are allowed");
                Channel::from_shared(format!("http://{addr}"))?
                    .tcp_nodelay(true)
                    .connect()
                    .await
                    .context("connecting to the watch target")?
            }
            None => channels[0].clone(),
        };
        let tally = alerts::run(channels[0].clone(), watch, args.requests, stop_at).await?;
        let seconds = started.elapsed().as_secs_f64().max(1e-9);
        return report::Report::new(args.mode, 1, 1, seconds, tally).print(args.json);
    }
    let new_client: Box<dyn Fn(Channel) -> worker::Client> = if args.mode == Mode::V2 {
        let requests = Arc::new(v2::requests(
            &args.v2_model,
            &args.v2_version,
            args.batch,
            args.v2_features,
        ));
        let rows = args.batch;
        Box::new(move |channel| {
            worker::Client::V2(v2::Client::new(channel, Arc::clone(&requests), rows))
        })
    } else {
        let requests = Arc::new(detour_client::Requests::new(
            &network,
            args.batch,
            args.id_pool,
            args.id_offset,
        ));
        if args.mode == Mode::Reallocate {
            detour_client::seed_inventory(&channels[0], &network, &requests).await?;
        }
        let mode = args.mode;
        Box::new(move |channel| {
            worker::Client::Detour(detour_client::Client::new(
                channel,
                mode,
                Arc::clone(&requests),
            ))
        })
    };
    let started = Instant::now() + Duration::from_secs_f64(args.warmup);
    let schedule = Arc::new(worker::Schedule {
        started,
        stop_at: started + Duration::from_secs_f64(args.duration),
        limit: args.requests,
        sent: AtomicU64::new(0),
        workers: args.concurrency as u64,
        interval: (args.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.rate)),
    });
    let workers: Vec<_> = (0..args.concurrency)
        .map(|worker| {
            let client = new_client(channels[worker % channels.len()].clone());
            tokio::spawn(worker::run(client, worker as u64, Arc::clone(&schedule)))
        })
        .collect();
    let mut tally = worker::Tally::default();
    for worker in workers {
        tally.merge(worker.await?);
    }
    let seconds = started.elapsed().as_secs_f64().min(args.duration).max(1e-9);
    report::Report::new(args.mode, args.concurrency, args.batch, seconds, tally).print(args.json)
}
