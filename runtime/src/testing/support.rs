//! Helpers for the cases: running a monitor in the background, waiting for a
//! condition, and a backend wrapper that simulates an outage.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::backend::Backend;
use crate::error::{BackendError, Error};
use crate::monitor::Monitor;
use crate::task::{Ack, Claimed, NewTask, TaskId, Unserved, WorkerRegistration};
use crate::time::Timestamp;

/// How long a case waits for something before it fails.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `condition` every 20 ms until it holds; panics with `what` after
/// `PATIENCE` (30 s).
pub async fn wait_for<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out after {PATIENCE:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A monitor running in the background.
#[derive(Debug)]
pub struct Running {
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<(), Error>>,
}

impl Running {
    /// Starts `monitor` on its own task.
    pub fn start(monitor: Monitor) -> Self {
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(monitor.run_until(async move {
            let _ = rx.await;
        }));
        Self { stop: Some(tx), handle }
    }

    /// Graceful shutdown; returns the monitor's result.
    pub async fn stop(mut self) -> Result<(), Error> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match (&mut self.handle).await {
            Ok(result) => result,
            Err(join) => panic!("the monitor task failed: {join}"),
        }
    }

    /// Stops everything at once, as `kill -9` would: no release, no acks.
    pub async fn kill(self) {
        self.handle.abort();
        let _ = self.handle.await;
    }
}

/// Wraps a backend; while [`down`](Flaky::set_down) every worker-facing
/// operation fails, as if the server were unreachable.
#[derive(Debug, Clone)]
pub struct Flaky<B> {
    inner: B,
    down: Arc<AtomicBool>,
    /// Acks still to apply and then report as failed (a lost reply).
    lost_replies: Arc<AtomicU32>,
    /// Acks still to refuse after those, without applying them.
    refused_acks: Arc<AtomicU32>,
}

impl<B> Flaky<B> {
    /// Wraps `inner`, initially up.
    pub fn new(inner: B) -> Self {
        Self { inner, down: Arc::default(), lost_replies: Arc::default(), refused_acks: Arc::default() }
    }

    /// The next `lost` acks are applied but reported as failed, as when the
    /// connection drops before the reply; the `refused` after them fail
    /// without being applied.
    pub fn lose_ack_replies(&self, lost: u32, refused: u32) {
        self.lost_replies.store(lost, Ordering::SeqCst);
        self.refused_acks.store(refused, Ordering::SeqCst);
    }

    fn take(count: &AtomicU32) -> bool {
        count.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
    }

    /// Takes the backend down or brings it back.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn check(&self, operation: &str) -> Result<(), Error> {
        if self.down.load(Ordering::SeqCst) {
            return Err(BackendError::new("flaky", operation, "connection refused (simulated outage)").into());
        }
        Ok(())
    }
}

impl<B: Backend> Backend for Flaky<B> {
    type Codec = B::Codec;
    type Waiter = B::Waiter;

    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn push(&self, tasks: Vec<NewTask>) -> Result<Vec<TaskId>, Error> {
        self.check("push")?;
        self.inner.push(tasks).await
    }

    async fn claim(&self, worker: &WorkerRegistration, max: usize) -> Result<Claimed, Error> {
        self.check("claim")?;
        self.inner.claim(worker, max).await
    }

    async fn ack(&self, worker: &WorkerRegistration, acks: &[Ack]) -> Result<(), Error> {
        self.check("ack")?;
        let lost = BackendError::new("flaky", "ack", "connection reset before the reply (simulated)");
        if Self::take(&self.lost_replies) {
            self.inner.ack(worker, acks).await?;
            return Err(lost.into());
        }
        if Self::take(&self.refused_acks) {
            return Err(lost.into());
        }
        self.inner.ack(worker, acks).await
    }

    async fn heartbeat(&self, worker: &WorkerRegistration) -> Result<(), Error> {
        self.check("heartbeat")?;
        self.inner.heartbeat(worker).await
    }

    async fn rescue_orphans(&self) -> Result<u64, Error> {
        self.check("rescue")?;
        self.inner.rescue_orphans().await
    }

    async fn release(&self, worker: &WorkerRegistration) -> Result<u64, Error> {
        self.check("release")?;
        self.inner.release(worker).await
    }

    async fn cancelled_tasks(&self, worker: &WorkerRegistration) -> Result<Vec<TaskId>, Error> {
        self.check("cancelled_tasks")?;
        self.inner.cancelled_tasks(worker).await
    }

    async fn unserved(&self, queue: &str, served: &[&'static str]) -> Result<Vec<Unserved>, Error> {
        self.inner.unserved(queue, served).await
    }

    async fn bury_unserved(&self, queue: &str, job: &str, due_before: Timestamp, reason: &str) -> Result<u64, Error> {
        self.inner.bury_unserved(queue, job, due_before, reason).await
    }

    fn waiter(&self, queue: &str) -> Self::Waiter {
        self.inner.waiter(queue)
    }

    fn poll_interval(&self) -> Duration {
        self.inner.poll_interval()
    }

    fn parallel_claims(&self) -> usize {
        self.inner.parallel_claims()
    }

    fn orphan_after(&self) -> Duration {
        self.inner.orphan_after()
    }
}
