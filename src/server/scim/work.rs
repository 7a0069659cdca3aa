//! Where CPU-heavy SCIM work runs. Parsing a large body, applying a PATCH to a group of thousands,
//! and rendering or projecting large resources take milliseconds to seconds; on the async workers
//! they would stall every other request on the same worker (`/healthz` waited 21.6 s behind two
//! 8,000-email PATCHes). So that work runs on tokio's blocking pool, and a semaphore bounds how
//! many such jobs run at once, so a burst of large requests queues (holding only their bodies)
//! instead of taking every core and the memory of all their intermediate copies at once.

use std::sync::LazyLock;

use tokio::sync::Semaphore;

use super::error::{ScimError, internal};

/// Twice the cores (at least 4): enough to keep the cores busy while some jobs wait on the
/// directory lock, few enough that memory stays bounded.
static SLOTS: LazyLock<Semaphore> =
    LazyLock::new(|| Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()).saturating_mul(2).max(4)));

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
    }
}
