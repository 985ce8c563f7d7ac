//! Large requests off the async workers (issue 11, item 4).
//!
//! A request of 10 MB keeps a thread busy for a long time (JSON decode, tensor conversion, the
//! model, encode). On an async worker that stalls everything else the worker would have run:
//! with every worker held, health probes and small requests wait behind it, and in a cluster
//! liveness probes fail together. So a large request is handled whole on tokio's blocking
//! pool; health probes answer within 100 ms while 4 × 10 MB requests run
//! (`tests/health_under_load.rs`).

use std::future::Future;

use crate::api_error::ServeError;

/// Requests at least this large (body or protobuf bytes) run on the blocking pool; smaller
/// ones run in place, where a thread hop would cost more than the work.
pub const OFF_WORKER_BYTES: usize = 64 * 1024;

/// Runs `work` — the handling of a request of `size` bytes — to completion on the blocking
/// pool when `size` is at least [`OFF_WORKER_BYTES`], else right here. On the pool it is
/// driven by `Handle::block_on`, so a model's async hook (I/O, its own `spawn_blocking`)
/// works as usual.
/// A panic in `work` is a [`ServeError::Worker`] (converted into `E`: REST's or gRPC's error).
pub async fn on_pool<T, E>(
    size: usize,
    work: impl Future<Output = Result<T, E>> + Send + 'static,
) -> Result<T, E>
where
    T: Send + 'static,
    E: From<ServeError> + Send + 'static,
{
    if size < OFF_WORKER_BYTES {
        return work.await;
    }
    let runtime = tokio::runtime::Handle::current();
    match tokio::task::spawn_blocking(move || runtime.block_on(work)).await {
        Ok(result) => result,
        Err(e) => Err(ServeError::Worker(e.to_string()).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn small_work_runs_here_large_work_on_the_pool() {
        let here = std::thread::current().id();
        let small = on_pool(10, async {
            Ok::<_, ServeError>(std::thread::current().id())
        })
        .await
        .unwrap();
        assert_eq!(small, here);
        // a nested async step (a timer) still works on the pool
        let large = on_pool(OFF_WORKER_BYTES, async {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            Ok::<_, ServeError>(std::thread::current().id())
        })
        .await
        .unwrap();
        assert_ne!(large, here);
    }

    #[tokio::test]
    async fn errors_and_panics_become_serve_errors() {
        let e = on_pool::<(), ServeError>(OFF_WORKER_BYTES, async {
            Err(ServeError::Worker("model said no".into()))
        })
        .await
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            ServeError::Worker("model said no".into()).to_string()
        );
        let e = on_pool::<(), ServeError>(OFF_WORKER_BYTES, async { panic!("boom") })
            .await
            .unwrap_err();
        assert!(
            matches!(e, ServeError::Worker(ref m) if m.contains("panicked")),
            "{e}"
        );
    }
}
