//! `impl Backend for RedisBackend`: one call per method into the modules
//! that do the work.

use errand_runtime::backend::{Ack, Claimed, NewTask, Unserved, WakeSignal, WorkerRegistration};
use errand_runtime::{Backend, Codec, Error, Progress, TaskId, Timestamp, Tuning};

use crate::RedisBackend;

impl<C: Codec> Backend for RedisBackend<C> {
    const NAME: &'static str = crate::reply::NAME;
    type Codec = C;
    type Waiter = WakeSignal;

    fn tuning(&self) -> &Tuning {
        &self.inner.tuning
    }

    async fn push(&self, tasks: Vec<NewTask>) -> Result<Vec<TaskId>, Error> {
        self.push_tasks(tasks).await
    }

    async fn claim(&self, worker: &WorkerRegistration, max: usize) -> Result<Claimed, Error> {
        self.claim_tasks(worker, max).await
    }

    async fn ack(&self, worker: &WorkerRegistration, acks: &[Ack]) -> Result<(), Error> {
        self.ack_tasks(worker, acks).await
    }

    async fn heartbeat(&self, worker: &WorkerRegistration) -> Result<(), Error> {
        self.beat(worker).await
    }

    async fn rescue_orphans(&self) -> Result<u64, Error> {
        self.rescue().await
    }

    async fn release(&self, worker: &WorkerRegistration) -> Result<u64, Error> {
        self.release_worker(worker).await
    }

    async fn cancelled_tasks(&self, worker: &WorkerRegistration) -> Result<Vec<TaskId>, Error> {
        self.cancelled_of(worker).await
    }

    async fn unserved(&self, queue: &str, since: Timestamp) -> Result<Vec<Unserved>, Error> {
        self.unserved_jobs(queue, since).await
    }

    async fn bury_unserved(
        &self,
        queue: &str,
        job: &str,
        due_before: Timestamp,
        since: Timestamp,
        reason: &str,
    ) -> Result<u64, Error> {
        self.bury_waiting(queue, job, due_before, since, reason).await
    }

    async fn purge_expired(&self) -> Result<u64, Error> {
        self.purge().await
    }

    async fn record_progress(&self, worker: &WorkerRegistration, updates: &[(TaskId, Progress)]) -> Result<(), Error> {
        self.store_progress(worker, updates).await
    }

    fn waiter(&self, queue: &str) -> WakeSignal {
        self.subscribe(queue)
    }
}
