//! Where CPU-heavy SCIM work runs. Parsing a large body, applying a PATCH to a group of thousands,
//! and rendering or projecting large resources take milliseconds to seconds; on the async workers
//! they would stall every other request on the same worker (`/healthz` waited 21.6 s behind two
//! 8,000-email PATCHes). So that work runs on tokio's blocking pool, and a semaphore bounds how
//! many such jobs run at once, so a burst of large requests queues (holding only their bodies)
//! instead of taking every core and the memory of all their intermediate copies at once.
//!
//! Most requests are small (one user of a dozen attributes: microseconds of work), and handing
//! them to another thread and back costs more than the work: two thread wake-ups, which on a busy
//! machine each wait for a core. Measured with perf during a SCIM import, switching threads was a
//! quarter of the server's CPU. So [`sized`] runs small work where it is and sends only large work
//! to the pool.

use std::sync::LazyLock;

use tokio::sync::Semaphore;

use super::error::{ScimError, internal};

/// Twice the cores (at least 4): enough to keep the cores busy while some jobs wait on the
/// directory lock, few enough that memory stays bounded.
static SLOTS: LazyLock<Semaphore> =
    LazyLock::new(|| Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()).saturating_mul(2).max(4)));

/// Work on up to this many bytes (of a body, or of a resource as rendered) runs on the async
/// worker: well under a millisecond even for PATCH's most expensive paths.
pub const INLINE_BYTES: usize = 64 * 1024;

/// Runs `job`, which handles about `bytes` bytes, where it is when that is at most
/// [`INLINE_BYTES`], else on the blocking pool ([`heavy`]). A panic in the job is a 500 either way.
pub async fn sized<T: Send + 'static>(bytes: usize, job: impl FnOnce() -> Result<T, ScimError> + Send + 'static) -> Result<T, ScimError> {
    if bytes > INLINE_BYTES {
        return heavy(job).await;
    }
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).unwrap_or_else(|_| {
        tracing::error!("a SCIM request's work panicked");
        Err(internal("the request failed while it was processed"))
    })
}

/// Runs `job` on the blocking pool once a slot is free. A panic in the job is a 500, not a crash.
pub async fn heavy<T: Send + 'static>(job: impl FnOnce() -> Result<T, ScimError> + Send + 'static) -> Result<T, ScimError> {
    let _slot = SLOTS.acquire().await.map_err(|_| internal("the server is shutting down"))?;
    match tokio::task::spawn_blocking(job).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "a SCIM request's work failed");
            Err(internal("the request failed while it was processed"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn jobs_run_off_the_async_worker() {
        // One async worker: if the job blocked it, the ping below could not run until the job ended.
        let job = tokio::spawn(heavy(|| {
            std::thread::sleep(std::time::Duration::from_millis(300));
            Ok(std::time::Instant::now())
        }));
        let ping = tokio::spawn(async {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            std::time::Instant::now()
        });
        let pinged = ping.await.unwrap();
        let done = job.await.unwrap().unwrap();
        assert!(pinged < done, "the async worker was blocked by the job");
    }

    #[tokio::test]
    async fn a_panicking_job_is_a_500() {
        let e = heavy::<()>(|| panic!("boom")).await.unwrap_err();
        assert_eq!(e.status, 500);
        let e = sized::<()>(10, || panic!("boom")).await.unwrap_err();
        assert_eq!(e.status, 500);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn small_work_stays_on_its_thread_and_large_work_does_not() {
        let here = std::thread::current().id();
        let small = sized(INLINE_BYTES, || Ok(std::thread::current().id())).await.unwrap();
        let large = sized(INLINE_BYTES + 1, || Ok(std::thread::current().id())).await.unwrap();
        assert_eq!(small, here);
        assert_ne!(large, here);
    }
}
