//! Where CPU-heavy work runs. Work that would hold a reactor thread for about
//! 0.2 ms or more — inference over a large batch, ranking over many sites —
//! moves to tokio's blocking pool, so the other connections that thread serves
//! are not stalled behind it. Small work stays inline: the hand-off (27 µs,
//! BENCHMARKS.md) costs more than it saves there.

/// Runs `work` on the blocking pool when `heavy`, inline otherwise, inside the
/// caller's tracing span either way.
pub async fn run<T, F>(heavy: bool, work: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    if !heavy {
        return work();
    }
    let span = tracing::Span::current();
    match tokio::task::spawn_blocking(move || span.in_scope(work)).await {
        Ok(result) => result,
        Err(error) => match error.try_into_panic() {
            // Re-raise the work's panic in the request's task, as if it had run inline.
            Ok(panic) => std::panic::resume_unwind(panic),
            // Only a runtime shutting down cancels blocking work before it starts;
            // the request's task is being dropped with it.
            Err(error) => panic!("blocking work cancelled: {error}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn heavy_work_leaves_the_reactor_thread_and_light_work_does_not() {
        let reactor = std::thread::current().id();
        let light = run(false, move || std::thread::current().id()).await;
        let heavy = run(true, move || std::thread::current().id()).await;
        assert_eq!(light, reactor);
        assert_ne!(heavy, reactor);
    }
}
