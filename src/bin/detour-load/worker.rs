//! The loop: each worker sends back to back (or paced, at `--rate`) until the
//! shared count of requests or the end time is reached, whichever first,
//! timing each call of the measured phase (those before `started` are the
//! warm-up). Knows nothing of what a request is: the client sends it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::{detour_client, v2};

/// One worker's client, of either server.
#[expect(
    clippy::large_enum_variant,
    reason = "one per worker, made once: boxing would only add a hop per call"
)]
pub enum Client {
    Detour(detour_client::Client),
    V2(v2::Client),
}

impl Client {
    async fn send(&mut self, i: u64) -> Result<(), String> {
        match self {
            Client::Detour(client) => client.send(i).await,
            Client::V2(client) => client.send(i).await,
        }
    }
}

/// When the workers measure and stop, shared by all of them.
pub struct Schedule {
    /// End of the warm-up: calls from here on are measured and counted.
    pub started: Instant,
    pub stop_at: Instant,
    /// Measured calls in total over every worker.
    pub limit: u64,
    /// Measured calls started so far.
    pub sent: AtomicU64,
    /// Workers, each taking every `workers`-th request number.
    pub workers: u64,
    /// Time between one worker's sends when paced; `None` sends back to back.
    pub interval: Option<std::time::Duration>,
}

/// What one worker saw in the measured phase.
#[derive(Debug, Default)]
pub struct Tally {
    /// Latency of each successful call, in microseconds.
    pub latencies: Vec<u32>,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Tally {
    /// Adds `other`'s calls to these; the first error stays the first seen.
    pub fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// Runs worker number `worker` until the schedule stops it.
pub async fn run(mut client: Client, worker: u64, schedule: Arc<Schedule>) -> Tally {
    let mut tally = Tally {
        latencies: Vec::with_capacity(4096),
        ..Tally::default()
    };
    let mut i = worker;
    let mut next = tokio::time::Instant::now();
    loop {
        if let Some(interval) = schedule.interval {
            // Paced: one send per interval, skipping slots a slow answer missed.
            tokio::time::sleep_until(next).await;
            next += interval;
            let now = tokio::time::Instant::now();
            while next < now {
                next += interval;
            }
        }
        let now = Instant::now();
        if now >= schedule.stop_at {
            break;
        }
        let measured = now >= schedule.started;
        if measured && schedule.sent.fetch_add(1, Ordering::Relaxed) >= schedule.limit {
            break;
        }
        let began = Instant::now();
        let result = client.send(i).await;
        let took = began.elapsed();
        // Workers take interleaved numbers, so ingest event ids never collide.
        i += schedule.workers;
        if !measured {
            continue;
        }
        match result {
            Ok(()) => tally.latencies.push(took.as_micros() as u32),
            Err(error) => {
                tally.errors += 1;
                tally.first_error.get_or_insert(error);
            }
        }
    }
    tally
}
