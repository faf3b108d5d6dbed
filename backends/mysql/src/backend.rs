//! `impl Backend for MysqlBackend`: one call per method into the module
//! that does it.

use errand_runtime::backend::{Ack, Claimed, NewTask, Unserved, WorkerRegistration};
use errand_runtime::{Backend, Codec, Error, Progress, TaskId, Timestamp, Tuning};

use crate::poll::MysqlWaiter;
use crate::{MysqlBackend, NAME, ack, claim, progress, push, workers};

impl<C: Codec> Backend for MysqlBackend<C> {
    const NAME: &'static str = NAME;

    type Codec = C;
    type Waiter = MysqlWaiter;

    fn tuning(&self) -> &Tuning {
        &self.inner.tuning
    }

    async fn push(&self, tasks: Vec<NewTask>) -> Result<Vec<TaskId>, Error> {
        push::push(&self.inner, tasks).await
    }

    async fn claim(&self, worker: &WorkerRegistration, max: usize) -> Result<Claimed, Error> {
        claim::claim(self, worker, max).await
    }

    async fn ack(&self, worker: &WorkerRegistration, acks: &[Ack]) -> Result<(), Error> {
        ack::ack(self, worker, acks).await
    }

    async fn heartbeat(&self, worker: &WorkerRegistration) -> Result<(), Error> {
        workers::heartbeat(&self.inner, worker).await
    }

    async fn rescue_orphans(&self) -> Result<u64, Error> {
        workers::rescue_orphans(self).await
    }

    async fn release(&self, worker: &WorkerRegistration) -> Result<u64, Error> {
        workers::release(&self.inner, worker).await
    }

    async fn cancelled_tasks(&self, worker: &WorkerRegistration) -> Result<Vec<TaskId>, Error> {
        workers::cancelled_tasks(&self.inner, worker).await
    }

    async fn unserved(&self, queue: &str, since: Timestamp) -> Result<Vec<Unserved>, Error> {
        workers::unserved(&self.inner, queue, since).await
    }

    async fn bury_unserved(
        &self,
        queue: &str,
        job: &str,
        due_before: Timestamp,
        since: Timestamp,
        reason: &str,
    ) -> Result<u64, Error> {
        workers::bury_unserved(self, queue, job, due_before, since, reason).await
    }

    async fn purge_expired(&self) -> Result<u64, Error> {
        workers::purge_expired(&self.inner).await
    }

    async fn record_progress(&self, worker: &WorkerRegistration, updates: &[(TaskId, Progress)]) -> Result<(), Error> {
        progress::record(&self.inner, worker, updates).await
    }

    /// Starts the backend value's idle poller on first use (see the `poll`
    /// module).
    fn waiter(&self, queue: &str) -> MysqlWaiter {
        MysqlWaiter::new(&self.inner, queue)
    }
}
