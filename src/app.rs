//! Wiring: loads the network and models, builds the feature store named by the
//! config, and serves every gRPC service (with health and reflection) until the
//! shutdown future resolves. Then health turns NOT_SERVING, new connections stop,
//! and in-flight requests get the grace period to finish.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::api::admin::AdminAuth;
use crate::api::{
    AnomaliesService, EventIngestService, ModelAdminService, RecommendationsService,
    RiskScoringService,
};
use crate::config::Config;
use crate::features::{
    EventUpdates, FeatureError, FeatureSettings, FeatureStore, InMemoryFeatureStore,
    RedisFeatureStore, RedisSettings,
};
use crate::ingest::Ingestor;
use crate::lifecycle::shared::SharedRegistry;
use crate::lifecycle::{Lifecycle, LifecycleSettings};
use crate::models::ModelError;
use crate::monitor::Monitor;
use crate::network::{Network, NetworkError};
use crate::pb;
use crate::planning::Planner;
use crate::registry::ModelRegistry;
use crate::scoring::Scorer;

/// The largest admin request: an artifact's files (at most 16 MB) and framing.
const ADMIN_MAX_MESSAGE_BYTES: usize = crate::models::artifact::MAX_ARTIFACT_BYTES + (1 << 20);

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A model artifact could not be loaded or was refused.
    #[error("model artifacts refused: {0}")]
    Models(#[from] ModelError),
    /// `network.toml` could not be read or is invalid.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// The feature store could not be set up (a malformed Redis URL).
    #[error(transparent)]
    Store(#[from] FeatureError),
    /// The reflection service could not be built from the descriptors.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The gRPC server failed to serve.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves on `listener` until `shutdown` resolves.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    // As configured; a relative path is relative to the working directory.
    let models_dir = config.models.clone();
    let network_path = models_dir.join("network.toml");
    let network = if network_path.exists() {
        Network::load(&network_path)?
    } else {
        tracing::warn!(path = %network_path.display(), "no network file; site limits unknown");
        Network::default()
    };
    let shared = match &config.redis {
        Some(url) => Some(
            SharedRegistry::new(url, &config.namespace, config.redis_timeout()).map_err(
                |detail| FeatureError::Unavailable {
                    detail,
                    source: None,
                },
            )?,
        ),
        None => None,
    };
    let lifecycle = Lifecycle::start(
        LifecycleSettings {
            repo: models_dir.clone(),
            metric_tolerance: config.metric_tolerance,
        },
        shared,
    )
    .await?;
    lifecycle.spawn_background();
    let registry = Arc::clone(lifecycle.registry());
    tracing::info!(models = %registry.snapshot().versions(), registry = lifecycle.backend(), "models loaded");
    match &config.admin_token {
        Some(_) => tracing::info!("model admin enabled (ModelAdmin, bearer token)"),
        None => tracing::warn!(
            "model admin disabled: no admin token (set admin_token or DETOUR_ADMIN_TOKEN to \
             deploy, promote and roll back models while serving)"
        ),
    }
    let network = Arc::new(network);
    let monitor: Arc<Monitor> = Arc::new(match &config.redis {
        Some(url) => Monitor::redis(
            url,
            &config.namespace,
            config.redis_timeout(),
            Arc::clone(&network),
        )?,
        None => Monitor::in_memory(Arc::clone(&network)),
    });
    monitor.start();
    let parts = Parts {
        lifecycle,
        monitor,
        registry,
        network,
        settings: FeatureSettings {
            sla_grace_minutes: config.sla_grace_minutes,
        },
    };
    match &config.redis {
        Some(url) => {
            let store = RedisFeatureStore::new(RedisSettings {
                url: url.clone(),
                namespace: config.namespace.clone(),
                timeout: config.redis_timeout(),
                dedupe_ttl: config.dedupe_ttl(),
            })?;
            if let Err(error) = store.ping().await {
                tracing::warn!(%error, "Redis not reachable yet; serving degraded until it is");
            } else {
                match store.persistence().await {
                    Ok(persistence) => match persistence.risk() {
                        Some(risk) => tracing::warn!(
                            appendonly = persistence.append_only,
                            appendfsync = %persistence.append_fsync,
                            save = %persistence.snapshots,
                            "{risk}"
                        ),
                        None => tracing::info!("Redis persists every write (appendfsync always)"),
                    },
                    // Managed Redis often forbids CONFIG: say so, and go on.
                    Err(error) => tracing::info!(
                        %error,
                        "could not read Redis's persistence settings; make sure it has \
                         appendonly yes and appendfsync always (README, \"Durability\")"
                    ),
                }
            }
            serve(store, parts, &config, listener, shutdown).await
        }
        None => {
            let store =
                InMemoryFeatureStore::bounded(config.dedupe_ttl(), config.memory_max_entries);
            serve(store, parts, &config, listener, shutdown).await
        }
    }
}

/// What every backend's server is built from.
struct Parts {
    lifecycle: Arc<Lifecycle>,
    monitor: Arc<Monitor>,
    registry: Arc<ModelRegistry>,
    network: Arc<Network>,
    settings: FeatureSettings,
}

async fn serve<S: FeatureStore>(
    store: S,
    parts: Parts,
    config: &Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    let store = Arc::new(store);
    let scorer = Arc::new(Scorer::new(
        Arc::clone(&store),
        Arc::clone(&parts.registry),
        Arc::clone(&parts.network),
    ));
    let planner = Arc::new(Planner::new(
        Arc::clone(&store),
        Arc::clone(&parts.registry),
        parts.network,
        config.reroute_policy(),
        config.reallocation_policy(),
    ));
    // An alert's legs at risk get their top reroute from the same planner.
    let suggesting = Arc::clone(&planner);
    parts.monitor.suggest_with(Arc::new(
        move |id: String| -> std::pin::Pin<Box<dyn Future<Output = _> + Send>> {
            let planner = Arc::clone(&suggesting);
            Box::pin(async move { planner.top_reroute(&id).await })
        },
    ));
    // Committed alert changes become the disruption records the carrier
    // model reads, in the same store as every other feature.
    let signalled = Arc::clone(&store);
    parts.monitor.signal_with(Arc::new(
        move |events: Vec<EventUpdates>| -> std::pin::Pin<Box<dyn Future<Output = _> + Send>> {
            let store = Arc::clone(&signalled);
            Box::pin(async move { store.apply(&events).await.map(|_| ()) })
        },
    ));
    let recommendations = pb::recommendations_server::RecommendationsServer::new(
        RecommendationsService::new(planner),
    );
    let scoring = pb::risk_scoring_server::RiskScoringServer::new(RiskScoringService::new(scorer));
    let ingestor = Ingestor::new(Arc::clone(&store), parts.settings).with_outcomes(parts.registry);
    let ingestor = Arc::new(if config.anomalies {
        ingestor.with_monitor(Arc::clone(&parts.monitor))
    } else {
        tracing::warn!("anomaly detection off (anomalies = false): WatchAnomalies stays silent");
        ingestor
    });
    let monitor = Arc::clone(&parts.monitor);
    let anomalies =
        pb::anomalies_server::AnomaliesServer::new(AnomaliesService::new(parts.monitor));
    let admin = tonic::service::interceptor::InterceptedService::new(
        pb::model_admin_server::ModelAdminServer::new(ModelAdminService::new(parts.lifecycle))
            // An artifact's files travel in one request.
            .max_decoding_message_size(ADMIN_MAX_MESSAGE_BYTES),
        AdminAuth::new(config.admin_token.as_deref()),
    );
    let ingest = pb::event_ingest_server::EventIngestServer::new(EventIngestService::new(ingestor));

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<pb::risk_scoring_server::RiskScoringServer<RiskScoringService<S>>>()
        .await;
    health
        .set_serving::<pb::event_ingest_server::EventIngestServer<EventIngestService<S>>>()
        .await;
    health
        .set_serving::<pb::recommendations_server::RecommendationsServer<RecommendationsService<S>>>()
        .await;
    health
        .set_serving::<pb::anomalies_server::AnomaliesServer<AnomaliesService>>()
        .await;
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(%address, backend = store.backend_name(), "serving");

    let (draining_tx, draining_rx) = tokio::sync::oneshot::channel::<()>();
    let health_on_shutdown = health.clone();
    let stop_accepting = async move {
        shutdown.await;
        tracing::info!("shutdown: health NOT_SERVING, draining in-flight requests");
        for service in [
            "",
            <pb::risk_scoring_server::RiskScoringServer<RiskScoringService<S>> as tonic::server::NamedService>::NAME,
            <pb::event_ingest_server::EventIngestServer<EventIngestService<S>> as tonic::server::NamedService>::NAME,
            <pb::recommendations_server::RecommendationsServer<RecommendationsService<S>> as tonic::server::NamedService>::NAME,
            <pb::anomalies_server::AnomaliesServer<AnomaliesService> as tonic::server::NamedService>::NAME,
        ] {
            health_on_shutdown
                .set_service_status(service, tonic_health::ServingStatus::NotServing)
                .await;
        }
        let _ = draining_tx.send(());
    };
    let server = Server::builder()
        .layer(tower::util::MapResponseLayer::new(
            crate::api::status_codes::conventional::<tonic::body::Body>,
        ))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(scoring)
        .add_service(ingest)
        .add_service(recommendations)
        .add_service(admin)
        .add_service(anomalies)
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            stop_accepting,
        );
    let grace = config.shutdown_grace();
    let grace_expired = async move {
        if draining_rx.await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = server => result?,
        () = grace_expired => tracing::warn!(?grace, "grace period over; dropping unfinished requests"),
    }
    // What ingest acknowledged reaches the detectors before the process ends.
    match tokio::time::timeout(grace, monitor.flush()).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => tracing::warn!(%error, "anomaly points not flushed at shutdown"),
        Err(_) => tracing::warn!(?grace, "anomaly points not flushed within the grace period"),
    }
    tracing::info!("stopped");
    Ok(())
}
