//! The `detour` binary: parses the command line, loads settings, starts logging
//! and hands over to [`detour::app::run`].

#![forbid(unsafe_code)]

use std::path::PathBuf;

mod admin_cli;

use anyhow::Context;
use clap::{Parser, Subcommand};
use detour::config::Config;

/// mimalloc instead of the system allocator: a scored item or an ingested event
/// makes a few dozen small allocations, and glibc's malloc and free were a
/// quarter of the server's CPU under load (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Risk scoring and recommendations for fulfillment networks, over gRPC.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serves the gRPC API. Settings: flags > DETOUR_* environment > config file > defaults.
    Serve(ServeArgs),
    /// Model lifecycle against a running server: models, deploy, promote,
    /// rollback, shadow, canary, unload, compare (token: DETOUR_ADMIN_TOKEN).
    Admin(admin_cli::AdminArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// TOML config file (any key below, e.g. `redis = "redis://127.0.0.1:6379"`).
    #[arg(long, env = "DETOUR_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:50051].
    #[arg(long)]
    listen: Option<String>,
    /// Redis URL for the feature store; in-memory when unset.
    #[arg(long)]
    redis: Option<String>,
    /// Directory of model artifacts and network.toml [default: models].
    #[arg(long)]
    models: Option<String>,
    /// Prefix of every Redis key [default: detour].
    #[arg(long)]
    namespace: Option<String>,
    /// Log format: text or json [default: text].
    #[arg(long)]
    log_format: Option<String>,
    /// Threads serving requests [default: 0, one per core].
    #[arg(long)]
    workers: Option<String>,
    /// Admin token enabling ModelAdmin (prefer DETOUR_ADMIN_TOKEN: flags show
    /// in process lists).
    #[arg(long)]
    admin_token: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Admin(args) => {
            // A refusal is an answer, not a crash: its message, no backtrace.
            if let Err(error) = admin_cli::run(args) {
                eprintln!("error: {error:#}");
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let flags: Vec<(&str, String)> = [
        ("listen", args.listen),
        ("redis", args.redis),
        ("models", args.models),
        ("namespace", args.namespace),
        ("log_format", args.log_format),
        ("workers", args.workers),
        ("admin_token", args.admin_token),
    ]
    .into_iter()
    .filter_map(|(key, value)| value.map(|v| (key, v)))
    .collect();
    let config = Config::load(
        args.config.as_deref(),
        &|key| std::env::var(key).ok(),
        &flags,
    )?;
    detour::telemetry::init(config.log_format);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if config.workers > 0 {
        runtime.worker_threads(config.workers);
    }
    // Heavy inference and ranking run in place (`detour::cpu`), and each such
    // request hands its worker's other tasks to a thread of the blocking pool.
    // Bounding the pool at the cores keeps a burst of large batches from
    // growing a thread (and an allocator heap) per request: CPU-bound work gains
    // nothing from more threads than cores, and each thread's heap shows in the
    // peak RSS (`bench/side_by_side.sh`: 49 MB with all work inline; 85 MB
    // with this bound, 110 MB with twice the cores; BENCHMARKS.md).
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    runtime.max_blocking_threads(cores);
    let runtime = runtime
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        detour::app::run(config, listener, shutdown_signal()).await?;
        Ok(())
    })
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
