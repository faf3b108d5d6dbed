//! Progress reports of running tasks: stored in the queue's `g` hash (field
//! `<seq>` → `<percent>|<message>`), written only while the task is running
//! for the reporting worker, deleted by the claim that starts a new attempt,
//! and with the task by the purge.

use errand_runtime::backend::WorkerRegistration;
use errand_runtime::{Codec, Error, Progress, TaskId};

use crate::RedisBackend;
use crate::keys::split_id;
use crate::record::write_progress;
use crate::reply::{count, failed};

impl<C: Codec> RedisBackend<C> {
    /// [`Backend::record_progress`](errand_runtime::Backend::record_progress):
    /// one script call for the whole batch, which writes the progress of
    /// the tasks still running for `worker` and drops the rest.
    pub(crate) async fn store_progress(
        &self,
        worker: &WorkerRegistration,
        updates: &[(TaskId, Progress)],
    ) -> Result<(), Error> {
        if updates.is_empty() {
            return Ok(());
        }
        let queue = &*worker.queue;
        let number = self.queue_number(queue).await?;
        let base = self.inner.keys.base(queue);
        let lua = &self.inner.scripts.progress;
        let mut cmd = lua.call(&[&format!("{base}if:{}", worker.id)]);
        cmd.arg(&base);
        let mut value = Vec::new();
        let mut sent = 0;
        for (id, progress) in updates {
            // A task of another queue is not running for this worker.
            let (task_queue, seq) = split_id(*id);
            if task_queue != number {
                continue;
            }
            write_progress(&mut value, progress);
            cmd.arg(seq).arg(&value);
            sent += 1;
        }
        if sent == 0 {
            return Ok(());
        }
        let what = format!("store the progress of {sent} task(s) of worker `{}` on queue `{queue}`", worker.id);
        let stored = lua.run(&mut self.conn(), &cmd).await.map_err(|e| failed(what.as_str(), e))?;
        count(&stored, &what)?;
        Ok(())
    }
}
