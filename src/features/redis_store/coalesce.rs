//! Coalesces the small reads of requests served at the same moment into one
//! write to Redis. Each request still sends exactly one command and waits one
//! round trip; what changes is that the commands of every request ready in the
//! same scheduler pass leave in one pipeline — one `writev` and one wake-up of
//! Redis instead of one each.
//!
//! Why not leave it to the connection: its driver task flushes whatever is
//! queued when it runs, but tokio runs a task woken by the running one next, so
//! the driver runs after every single request and flushes one command at a time.
//!
//! How: the first request to find the queue empty leads. If other reads are in
//! flight (so others may be about to queue), it yields once, so the requests
//! already runnable queue their commands behind it; alone, it does not wait.
//! Then it sends the lot as one pipeline from a task of its own and, like the
//! others, waits for its answer. There is no long-lived task: the lot is sent
//! on whichever runtime the leader runs on. A leader dropped while it yields
//! still sends the lot; a command whose caller has gone (its deadline passed)
//! is not sent.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use redis::aio::ConnectionManager;
use redis::{RedisError, Value};
use tokio::sync::oneshot;

/// Reads of more keys than this go on their own: a large read would hold the
/// small ones of its pipeline back until its whole answer is in.
pub const MAX_COALESCED_KEYS: usize = 64;

type Reply = oneshot::Sender<Result<Value, RedisError>>;

/// Sends commands through a shared connection, coalesced (see the module doc).
pub struct Coalescer {
    connection: ConnectionManager,
    queue: Mutex<Vec<(redis::Cmd, Reply)>>,
    /// Reads queued or waiting for their answer.
    in_flight: AtomicUsize,
}

/// Counts a read in flight for as long as it lives.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The leader's duty to send the lot, even if it is dropped before it does.
struct Lead<'a>(&'a Coalescer);

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        self.0.send_queued();
    }
}

impl Coalescer {
    /// A coalescer over `connection`.
    pub fn new(connection: ConnectionManager) -> Self {
        Coalescer {
            connection,
            queue: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
        }
    }

    /// Sends `command` (one of at most [`MAX_COALESCED_KEYS`] keys) together
    /// with those of the requests runnable now, and waits for its answer. Must be
    /// called within a tokio runtime.
    pub async fn query(&self, command: redis::Cmd) -> Result<Value, RedisError> {
        let others = self.in_flight.fetch_add(1, Ordering::Relaxed) > 0;
        let _in_flight = InFlight(&self.in_flight);
        let (reply, answer) = oneshot::channel();
        let leads = {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            queue.push((command, reply));
            queue.len() == 1
        };
        if leads {
            let lead = Lead(self);
            if others {
                tokio::task::yield_now().await;
            }
            drop(lead);
        }
        answer.await.unwrap_or_else(|_| {
            Err(RedisError::from((
                redis::ErrorKind::Io,
                "the coalesced read was dropped before it was sent",
            )))
        })
    }

    /// Takes the queue and sends it, from a task of its own so that the lot
    /// does not depend on any one caller staying around.
    fn send_queued(&self) {
        let lot = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()));
        if lot.is_empty() {
            return;
        }
        // Outside a runtime (a runtime shutting down), the lot is dropped and its
        // callers get an I/O error, which they retry.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(send(self.connection.clone(), lot));
        }
    }
}

async fn send(mut connection: ConnectionManager, mut lot: Vec<(redis::Cmd, Reply)>) {
    lot.retain(|(_, reply)| !reply.is_closed());
    if lot.len() <= 1 {
        if let Some((command, reply)) = lot.pop() {
            let _ = reply.send(command.query_async(&mut connection).await);
        }
        return;
    }
    let mut pipeline = redis::pipe();
    pipeline.ignore_errors();
    let mut replies = Vec::with_capacity(lot.len());
    for (command, reply) in lot {
        pipeline.add_command(command);
        replies.push(reply);
    }
    match pipeline.query_async::<Vec<Value>>(&mut connection).await {
        Ok(answers) if answers.len() == replies.len() => {
            for (reply, answer) in replies.into_iter().zip(answers) {
                let _ = reply.send(match answer {
                    Value::ServerError(error) => Err(error.into()),
                    value => Ok(value),
                });
            }
        }
        Ok(answers) => {
            let detail = format!("{} answers for {} commands", answers.len(), replies.len());
            for reply in replies {
                let _ = reply.send(Err(RedisError::from((
                    redis::ErrorKind::Parse,
                    "pipeline",
                    detail.clone(),
                ))));
            }
        }
        Err(error) => {
            let detail = error.to_string();
            let kind = error.kind();
            let broken = error.is_io_error()
                || error.is_connection_dropped()
                || error.is_connection_refusal();
            for reply in replies {
                // RedisError is not Clone: each caller gets its own, of the same
                // kind, so a broken connection is still retried.
                let _ = reply.send(Err(if broken {
                    RedisError::from(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        detail.clone(),
                    ))
                } else {
                    RedisError::from((kind, "pipeline", detail.clone()))
                }));
            }
        }
    }
}
