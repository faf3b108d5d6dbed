//! `impl Backend for SqliteBackend`: each method is one call into the module
//! that does it (push.rs, claim.rs, ack.rs, workers.rs, retention.rs).

use errand_runtime::backend::{Ack, Claimed, NewTask, Unserved, WakeSignal, WorkerRegistration};
use errand_runtime::{Backend, Codec, Error, Progress, TaskId, Timestamp, Tuning};

use crate::{NAME, SqliteBackend};

impl<C: Codec> Backend for SqliteBackend<C> {
    const NAME: &'static str = NAME;
    type Codec = C;
    type Waiter = WakeSignal;

    fn tuning(&self) -> &Tuning {
        &self.tuning
    }

    async fn push(&self, tasks: Vec<NewTask>) -> Result<Vec<TaskId>, Error> {
        SqliteBackend::push(self, tasks).await
    }

    async fn claim(&self, worker: &WorkerRegistration, max: usize) -> Result<Claimed, Error> {
        SqliteBackend::claim(self, worker, max).await
    }

    async fn ack(&self, worker: &WorkerRegistration, acks: &[Ack]) -> Result<(), Error> {
        SqliteBackend::ack(self, worker, acks).await
    }

    async fn heartbeat(&self, worker: &WorkerRegistration) -> Result<(), Error> {
        SqliteBackend::heartbeat(self, worker).await
    }

    async fn rescue_orphans(&self) -> Result<u64, Error> {
        SqliteBackend::rescue_orphans(self).await
    }

    async fn release(&self, worker: &WorkerRegistration) -> Result<u64, Error> {
        SqliteBackend::release(self, worker).await
    }

    async fn cancelled_tasks(&self, worker: &WorkerRegistration) -> Result<Vec<TaskId>, Error> {
        SqliteBackend::cancelled_tasks(self, worker).await
    }

    async fn unserved(&self, queue: &str, since: Timestamp) -> Result<Vec<Unserved>, Error> {
        SqliteBackend::unserved(self, queue, since).await
    }

    async fn bury_unserved(
        &self,
        queue: &str,
        job: &str,
        due_before: Timestamp,
        since: Timestamp,
        reason: &str,
    ) -> Result<u64, Error> {
        SqliteBackend::bury_unserved(self, queue, job, due_before, since, reason).await
    }

    async fn purge_expired(&self) -> Result<u64, Error> {
        SqliteBackend::purge_expired(self).await
    }

    async fn record_progress(&self, worker: &WorkerRegistration, updates: &[(TaskId, Progress)]) -> Result<(), Error> {
        SqliteBackend::record_progress(self, worker, updates).await
    }

    fn waiter(&self, queue: &str) -> WakeSignal {
        self.inner.notifier.subscribe(queue)
    }
}
