//! Where CPU-heavy work runs. Work of about 0.75 ms or more — inference over
//! a large batch, ranking over many sites — must not stall the other
//! connections its worker thread serves. On the server's multi-threaded
//! runtime it runs in place (`block_in_place`): the thread keeps the work and
//! its warm inputs, and tokio hands the worker's other tasks to another thread
//! meanwhile. On a current-thread runtime (a test), which cannot give its
//! thread away, it goes to the blocking pool instead. Smaller work stays
//! inline: on a small machine, handing the worker over costs the request itself
//! more than it spares the others (BENCHMARKS.md, "Work off the reactor").

use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `work` so that it cannot stall the reactor when `heavy`, inline
/// otherwise, inside the caller's tracing span either way.
pub async fn run<T, F>(heavy: bool, work: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    if !heavy {
        return work();
    }
    let multi_thread =
        Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
    if multi_thread {
        return tokio::task::block_in_place(work);
    }
    // A current-thread runtime (a test) cannot give its thread away.
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
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use super::*;

    /// Work that spins until another task on the runtime has run, or gives up.
    fn wait_for(flag: Arc<AtomicBool>) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if flag.load(Ordering::SeqCst) {
                return true;
            }
            std::thread::yield_now();
        }
        false
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn heavy_work_leaves_the_runtimes_only_worker_free_for_other_tasks() {
        let ran = Arc::new(AtomicBool::new(false));
        let other = {
            let ran = Arc::clone(&ran);
            tokio::spawn(async move { ran.store(true, Ordering::SeqCst) })
        };
        let flag = Arc::clone(&ran);
        assert!(
            run(true, move || wait_for(flag)).await,
            "another task ran while the heavy work ran"
        );
        other.await.unwrap();
    }

    #[tokio::test]
    async fn heavy_work_on_a_current_thread_runtime_runs_on_the_blocking_pool() {
        let here = std::thread::current().id();
        let light = run(false, move || std::thread::current().id()).await;
        let heavy = run(true, move || std::thread::current().id()).await;
        assert_eq!(light, here);
        assert_ne!(heavy, here);
    }
}
