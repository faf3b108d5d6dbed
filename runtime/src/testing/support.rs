//! Helpers for the cases: running a monitor in the background, waiting for a
//! condition, and a backend wrapper that simulates an outage.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::backend::{Ack, Backend, Claimed, NewTask, Tuning, Unserved, WorkerRegistration};
use crate::error::{BackendError, Error};
use crate::memory::MemoryBackend;
use crate::monitor::Monitor;
use crate::task::{Progress, TaskId};
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
    /// A task whose `done` ack the store refuses (as a result too large for
    /// it): every ack call carrying it fails, the others are unaffected.
    refused_result: Arc<std::sync::Mutex<Option<TaskId>>>,
    progress_writes: Arc<AtomicU32>,
}

impl<B> Flaky<B> {
    /// Wraps `inner`, initially up.
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            down: Arc::default(),
            lost_replies: Arc::default(),
            refused_acks: Arc::default(),
            refused_result: Arc::default(),
            progress_writes: Arc::default(),
        }
    }

    /// The next `lost` acks are applied but reported as failed, as when the
    /// connection drops before the reply; the `refused` after them fail
    /// without being applied.
    pub fn lose_ack_replies(&self, lost: u32, refused: u32) {
        self.lost_replies.store(lost, Ordering::SeqCst);
        self.refused_acks.store(refused, Ordering::SeqCst);
    }

    /// Every ack call that carries a `done` outcome of task `id` fails
    /// without being applied, as when the store refuses its result.
    pub fn refuse_result_of(&self, id: TaskId) {
        *self.refused_result.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(id);
    }

    /// How many times `record_progress` was called through this wrapper.
    pub fn progress_writes(&self) -> u32 {
        self.progress_writes.load(Ordering::SeqCst)
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
    const NAME: &'static str = B::NAME;
    type Codec = B::Codec;
    type Waiter = B::Waiter;

    /// The inner backend's, whole: no setting is lost through the wrapper.
    fn tuning(&self) -> &Tuning {
        self.inner.tuning()
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
        let refused = *self.refused_result.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(id) = refused
            && acks.iter().any(|a| a.id == id && matches!(a.outcome, crate::backend::Outcome::Done { .. }))
        {
            return Err(
                BackendError::new("flaky", "ack", format!("the result of task {id} is too large (simulated)")).into()
            );
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

    async fn unserved(&self, queue: &str, since: Timestamp) -> Result<Vec<Unserved>, Error> {
        self.inner.unserved(queue, since).await
    }

    async fn bury_unserved(
        &self,
        queue: &str,
        job: &str,
        due_before: Timestamp,
        since: Timestamp,
        reason: &str,
    ) -> Result<u64, Error> {
        self.inner.bury_unserved(queue, job, due_before, since, reason).await
    }

    async fn purge_expired(&self) -> Result<u64, Error> {
        self.inner.purge_expired().await
    }

    async fn record_progress(&self, worker: &WorkerRegistration, updates: &[(TaskId, Progress)]) -> Result<(), Error> {
        self.check("record_progress")?;
        self.progress_writes.fetch_add(1, Ordering::SeqCst);
        self.inner.record_progress(worker, updates).await
    }

    fn waiter(&self, queue: &str) -> Self::Waiter {
        self.inner.waiter(queue)
    }
}

/// A backend with no [capability](crate::capability) at all: the in-memory
/// backend behind only the [`Backend`] contract. It stands for a store that
/// can do nothing optional, in compile-fail tests of the capability errors.
#[derive(Debug, Clone, Default)]
pub struct Bare(pub MemoryBackend);

impl Backend for Bare {
    const NAME: &'static str = "bare";
    type Codec = crate::codec::JsonCodec;
    type Waiter = crate::backend::WakeSignal;

    fn tuning(&self) -> &Tuning {
        self.0.tuning()
    }

    async fn push(&self, tasks: Vec<NewTask>) -> Result<Vec<TaskId>, Error> {
        self.0.push(tasks).await
    }

    async fn claim(&self, worker: &WorkerRegistration, max: usize) -> Result<Claimed, Error> {
        self.0.claim(worker, max).await
    }

    async fn ack(&self, worker: &WorkerRegistration, acks: &[Ack]) -> Result<(), Error> {
        self.0.ack(worker, acks).await
    }

    async fn heartbeat(&self, worker: &WorkerRegistration) -> Result<(), Error> {
        self.0.heartbeat(worker).await
    }

    async fn rescue_orphans(&self) -> Result<u64, Error> {
        self.0.rescue_orphans().await
    }

    async fn release(&self, worker: &WorkerRegistration) -> Result<u64, Error> {
        self.0.release(worker).await
    }

    async fn cancelled_tasks(&self, worker: &WorkerRegistration) -> Result<Vec<TaskId>, Error> {
        self.0.cancelled_tasks(worker).await
    }

    async fn unserved(&self, queue: &str, since: Timestamp) -> Result<Vec<Unserved>, Error> {
        self.0.unserved(queue, since).await
    }

    async fn bury_unserved(
        &self,
        queue: &str,
        job: &str,
        due_before: Timestamp,
        since: Timestamp,
        reason: &str,
    ) -> Result<u64, Error> {
        self.0.bury_unserved(queue, job, due_before, since, reason).await
    }

    async fn purge_expired(&self) -> Result<u64, Error> {
        self.0.purge_expired().await
    }

    async fn record_progress(&self, worker: &WorkerRegistration, updates: &[(TaskId, Progress)]) -> Result<(), Error> {
        self.0.record_progress(worker, updates).await
    }

    fn waiter(&self, queue: &str) -> Self::Waiter {
        self.0.waiter(queue)
    }
}
