//! Test harness: a real `redis-server` on a free port (or `REDIS_URL`), a real
//! Detour server on port 0 in-process, and generated tonic clients.

#![allow(dead_code)]

pub mod anomalies;
pub mod lifecycle;
pub mod stores;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use detour::config::Config;
use detour::pb;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// A `redis-server` owned by one test; killed on drop.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a private server on a free port.
    pub fn start() -> Self {
        let port = free_port();
        let mut server = RedisServer { port, child: None };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port, with an empty data set, in a
    /// directory of its own (a test that turns persistence on writes there,
    /// not into the checkout).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let dir = std::env::temp_dir().join(format!("detour-test-redis-{}", self.port));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a directory for redis-server");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be on PATH to run these tests");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server, as a crash would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            let dir = std::env::temp_dir().join(format!("detour-test-redis-{}", self.port));
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Redis for tests that only need one running: `REDIS_URL` when set, else a
/// private server. Tests keep apart by namespace.
pub fn shared_redis() -> (String, Option<RedisServer>) {
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => (url, None),
        _ => {
            let server = RedisServer::start();
            (server.url(), Some(server))
        }
    }
}

/// A namespace no other test uses.
pub fn unique_namespace(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("detour-test-{test}-{}-{nanos}", std::process::id())
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The shipped models.
pub fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// Settings for a test server: shipped models, in-memory unless `redis` is set.
pub fn config(redis: Option<String>, namespace: &str) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        redis,
        models: models_dir(),
        namespace: namespace.to_string(),
        redis_timeout_ms: 200,
        shutdown_grace_secs: 5,
        ..Config::default()
    }
}

/// A Detour server running in-process on a free port.
pub struct TestServer {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<Result<(), detour::app::AppError>>>,
}

impl TestServer {
    pub async fn start(config: Config) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(detour::app::run(config, listener, async move {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    pub async fn channel(&self) -> Channel {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match Channel::from_shared(format!("http://{}", self.addr))
                .unwrap()
                .connect()
                .await
            {
                Ok(channel) => return channel,
                Err(error) => {
                    assert!(Instant::now() < deadline, "server did not come up: {error}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    pub async fn scoring(&self) -> pb::risk_scoring_client::RiskScoringClient<Channel> {
        pb::risk_scoring_client::RiskScoringClient::new(self.channel().await)
    }

    pub async fn ingest(&self) -> pb::event_ingest_client::EventIngestClient<Channel> {
        pb::event_ingest_client::EventIngestClient::new(self.channel().await)
    }

    /// Ingests `events`, asserting every one was accepted.
    pub async fn ingest_all(&self, events: Vec<pb::Event>) {
        let count = events.len() as u32;
        let answer = self
            .ingest()
            .await
            .ingest_events(pb::IngestEventsRequest { events })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.accepted, count);
    }

    /// Sends the shutdown signal without waiting.
    pub fn signal_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Signals shutdown and waits for `run` to return.
    pub async fn stop(mut self) -> Result<(), detour::app::AppError> {
        self.signal_shutdown();
        self.handle
            .take()
            .unwrap()
            .await
            .expect("server task panicked")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.signal_shutdown();
    }
}

// ---- request builders -------------------------------------------------------

/// A wire time from RFC 3339 text, as a typed client would build it.
pub fn ts(text: &str) -> Option<prost_types::Timestamp> {
    Some(
        text.parse()
            .unwrap_or_else(|e| panic!("{text:?} is not RFC 3339: {e}")),
    )
}

/// A shipment leg; `failed` sets an outcome 3 hours late, else 5 minutes early.
pub fn shipment(
    id: &str,
    carrier: &str,
    origin: &str,
    destination: &str,
    day: u32,
    failed: Option<bool>,
) -> pb::Shipment {
    let departure = ts(&format!("2026-03-{day:02}T08:00:00Z"));
    let arrival = ts(&format!("2026-03-{day:02}T20:00:00Z"));
    let (status, actual_arrival) = match failed {
        None => (pb::ShipmentStatus::InTransit, None),
        Some(true) => (
            pb::ShipmentStatus::Delivered,
            ts(&format!("2026-03-{day:02}T23:00:00Z")),
        ),
        Some(false) => (
            pb::ShipmentStatus::Delivered,
            ts(&format!("2026-03-{day:02}T19:55:00Z")),
        ),
    };
    pb::Shipment {
        estimated_arrival: Default::default(),
        exception: Default::default(),
        reported_at: Default::default(),
        shipment_id: id.to_string(),
        carrier: carrier.to_string(),
        origin: origin.to_string(),
        destination: destination.to_string(),
        scheduled_departure: departure,
        scheduled_arrival: arrival,
        actual_departure: if failed.is_some() { departure } else { None },
        actual_arrival,
        status: status as i32,
    }
}

pub fn shipment_event(event_id: &str, shipment: pb::Shipment) -> pb::Event {
    pb::Event {
        event_id: event_id.to_string(),
        payload: Some(pb::event::Payload::Shipment(shipment)),
    }
}

pub fn order(id: &str, site: &str) -> pb::Order {
    pb::Order {
        shipped_at: Default::default(),
        allocated_at: Default::default(),
        picked_at: Default::default(),
        released_at: Default::default(),
        order_id: id.to_string(),
        created_at: ts("2026-03-20T10:00:00Z"),
        channel: "web".into(),
        site: site.to_string(),
        destination_region: "JFK".into(),
        promise_at: ts("2026-03-22T10:00:00Z"),
        line_count: 2,
        units: 3.0,
        priority: pb::OrderPriority::Standard as i32,
        outcome: 0,
    }
}

pub fn snapshot(site: &str, at: &str, backlog: f64) -> pb::SiteSnapshot {
    pb::SiteSnapshot {
        site: site.to_string(),
        at: ts(at),
        backlog,
        labour: 20.0,
        units_picked: 300.0,
        period_minutes: 60.0,
        dock_utilisation: 0.6,
    }
}

/// Twenty finished shipments on a carrier-lane, `failures` of them late.
pub fn lane_history(prefix: &str, carrier: &str, failures: usize) -> Vec<pb::Event> {
    (0..20)
        .map(|i| {
            let failed = i < failures;
            let id = format!("{prefix}-{carrier}-{i}");
            shipment_event(
                &id,
                shipment(
                    &id,
                    carrier,
                    "ATL",
                    "JFK",
                    1 + (i % 18) as u32,
                    Some(failed),
                ),
            )
        })
        .collect()
}

pub async fn score_shipment(
    client: &mut pb::risk_scoring_client::RiskScoringClient<Channel>,
    carrier: &str,
) -> pb::RiskScore {
    client
        .score_shipment(pb::ScoreShipmentRequest {
            shipment: Some(shipment("probe", carrier, "ATL", "JFK", 21, None)),
            as_of: None,
        })
        .await
        .expect("score answers")
        .into_inner()
}

/// Asserts a score is a probability with its model named and a band.
pub fn in_unit_interval(score: &pb::RiskScore) {
    assert!(
        (0.0..=1.0).contains(&score.probability),
        "probability {} outside [0, 1]",
        score.probability
    );
    assert!(!score.model_name.is_empty() && !score.model_version.is_empty());
    assert_ne!(score.band, pb::RiskBand::Unspecified as i32);
}
