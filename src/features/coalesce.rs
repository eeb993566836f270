//! Coalesces the reads of requests served at the same moment into one write to
//! Redis. Each request still sends exactly one command and waits one round
//! trip; what changes is that the commands of every request ready in the same
//! scheduler pass leave in one pipeline — one `writev` and one wake-up of Redis
//! instead of one each.
//!
//! Why not leave it to the connection: its driver task flushes whatever is
//! queued when it runs, but tokio runs a task woken by the running one next, so
//! the driver runs after every single request and flushes one command at a time.
//! The coalescer yields once before it drains its queue, so the requests already
//! runnable queue theirs first.

use std::sync::OnceLock;

use redis::aio::ConnectionManager;
use redis::{RedisError, Value};
use tokio::sync::{mpsc, oneshot};

/// Commands sent in one pipeline at most.
const MAX_PIPELINE: usize = 256;

type Reply = oneshot::Sender<Result<Value, RedisError>>;

/// Sends commands through a shared connection, coalesced (see the module doc).
pub struct Coalescer {
    connection: ConnectionManager,
    queue: OnceLock<mpsc::UnboundedSender<(redis::Cmd, Reply)>>,
}

impl Coalescer {
    /// A coalescer over `connection`; its task starts with the first command.
    pub fn new(connection: ConnectionManager) -> Self {
        Coalescer {
            connection,
            queue: OnceLock::new(),
        }
    }

    /// Sends `command` and waits for its answer. Must be called within a tokio
    /// runtime.
    pub async fn query(&self, command: redis::Cmd) -> Result<Value, RedisError> {
        let queue = self.queue.get_or_init(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            tokio::spawn(drain(self.connection.clone(), receiver));
            sender
        });
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::error::SendError((command, _))) = queue.send((command, reply)) {
            // The task ended (its runtime shut down): go direct.
            return command.query_async(&mut self.connection.clone()).await;
        }
        answer.await.unwrap_or_else(|_| {
            Err(RedisError::from((
                redis::ErrorKind::Io,
                "the read coalescer stopped",
            )))
        })
    }
}

/// Takes what is queued after one yield and sends it as one pipeline, without
/// waiting for the answers before taking the next lot.
async fn drain(
    connection: ConnectionManager,
    mut receiver: mpsc::UnboundedReceiver<(redis::Cmd, Reply)>,
) {
    let mut batch = Vec::new();
    while let Some(first) = receiver.recv().await {
        tokio::task::yield_now().await;
        batch.push(first);
        while batch.len() < MAX_PIPELINE {
            match receiver.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let lot = std::mem::replace(&mut batch, Vec::with_capacity(8));
        tokio::spawn(send(connection.clone(), lot));
    }
}

async fn send(mut connection: ConnectionManager, lot: Vec<(redis::Cmd, Reply)>) {
    if let [(command, _)] = lot.as_slice() {
        let answer = command.query_async(&mut connection).await;
        let (_, reply) = lot.into_iter().next().expect("one");
        let _ = reply.send(answer);
        return;
    }
    let mut pipeline = redis::pipe();
    pipeline.ignore_errors();
    for (command, _) in &lot {
        pipeline.add_command(command.clone());
    }
    match pipeline.query_async::<Vec<Value>>(&mut connection).await {
        Ok(answers) if answers.len() == lot.len() => {
            for ((_, reply), answer) in lot.into_iter().zip(answers) {
                let _ = reply.send(match answer {
                    Value::ServerError(error) => Err(error.into()),
                    value => Ok(value),
                });
            }
        }
        Ok(answers) => {
            let detail = format!("{} answers for {} commands", answers.len(), lot.len());
            for (_, reply) in lot {
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
            for (_, reply) in lot {
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
