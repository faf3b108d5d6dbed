//! Workers' lives and what no worker serves: heartbeats, rescuing the tasks
//! of dead workers, releasing on a graceful stop, cancelled running tasks,
//! and unserved jobs.

use errand_runtime::backend::{Unserved, WorkerRegistration};
use errand_runtime::{Codec, Error, TaskId, Timestamp};
use redis::Cmd;

use crate::RedisBackend;
use crate::claim::MOVE_BATCH;
use crate::keys::task_id;
use crate::pipeline::run_many;
use crate::record::millis;
use crate::reply::{self, count, failed, int, malformed};

/// Expiry entries pruned per queue and rescue round.
const PRUNE_PER_RESCUE: usize = 20;

impl<C: Codec> RedisBackend<C> {
    /// [`Backend::heartbeat`](errand_runtime::Backend::heartbeat): registers
    /// the queue (so that a worker's first beat makes its queue known) and
    /// the worker.
    pub(crate) async fn beat(&self, worker: &WorkerRegistration) -> Result<(), Error> {
        let queue = &*worker.queue;
        self.queue_number(queue).await?;
        let base = self.inner.keys.base(queue);
        let lua = &self.inner.scripts.heartbeat;
        let mut cmd = lua.call(&[&format!("{base}hb:{}", worker.id), &format!("{base}w"), &format!("{base}wi")]);
        let details = format!("{}\t{}\t{}", worker.job, worker.concurrency, worker.started_at.as_millis());
        cmd.arg(&base)
            .arg(self.now().as_millis())
            .arg(&*worker.id)
            .arg(millis(self.inner.tuning.orphan_after).max(1))
            .arg(details);
        lua.run(&mut self.conn(), &cmd)
            .await
            .map_err(|e| failed(format!("heartbeat of worker `{}` on queue `{queue}`", worker.id), e))?;
        Ok(())
    }

    /// [`Backend::rescue_orphans`](errand_runtime::Backend::rescue_orphans):
    /// one rescue script call per queue, pipelined; each also prunes expired
    /// `done` tasks.
    pub(crate) async fn rescue(&self) -> Result<u64, Error> {
        let queues = self.all_queues().await?;
        let lua = &self.inner.scripts.rescue;
        let now = self.now().as_millis();
        let calls: Vec<Cmd> = queues
            .iter()
            .map(|(queue, _)| {
                let base = self.inner.keys.base(queue);
                let mut cmd =
                    lua.call(&[&format!("{base}w"), &format!("{base}wi"), &format!("{base}n"), &format!("{base}dead")]);
                cmd.arg(&base)
                    .arg(now)
                    .arg(millis(self.inner.tuning.orphan_after))
                    .arg(&self.inner.channel)
                    .arg(queue)
                    .arg(PRUNE_PER_RESCUE)
                    .arg(millis(self.inner.tuning.retention));
                cmd
            })
            .collect();
        let replies = run_many(&self.inner.conn, lua, calls, "rescue the tasks of dead workers").await?;
        let mut rescued = 0;
        for ((queue, _), value) in queues.iter().zip(replies) {
            let n = count(&value, &format!("rescue the tasks of dead workers on queue `{queue}`"))?;
            if n > 0 {
                self.inner.notifier.notify(queue);
            }
            rescued += n;
        }
        Ok(rescued)
    }

    /// [`Backend::release`](errand_runtime::Backend::release).
    pub(crate) async fn release_worker(&self, worker: &WorkerRegistration) -> Result<u64, Error> {
        let queue = &*worker.queue;
        let base = self.inner.keys.base(queue);
        let lua = &self.inner.scripts.release;
        let id = &*worker.id;
        let mut cmd = lua.call(&[
            &format!("{base}if:{id}"),
            &format!("{base}w"),
            &format!("{base}wi"),
            &format!("{base}n"),
            &format!("{base}hb:{id}"),
            &format!("{base}lc:{id}"),
        ]);
        cmd.arg(&base).arg(self.now().as_millis()).arg(id).arg(&self.inner.channel).arg(queue);
        let what = format!("release the tasks of worker `{id}` on queue `{queue}`");
        let value = lua.run(&mut self.conn(), &cmd).await.map_err(|e| failed(what.as_str(), e))?;
        self.forget_lost_claims(&worker.id);
        let released = count(&value, &what)?;
        if released > 0 {
            self.inner.notifier.notify(queue);
        }
        Ok(released)
    }

    /// [`Backend::cancelled_tasks`](errand_runtime::Backend::cancelled_tasks):
    /// the worker's `cx:` set.
    pub(crate) async fn cancelled_of(&self, worker: &WorkerRegistration) -> Result<Vec<TaskId>, Error> {
        let queue = &*worker.queue;
        let number = self.queue_number(queue).await?;
        let key = format!("{}cx:{}", self.inner.keys.base(queue), worker.id);
        let seqs: Vec<u64> =
            redis::cmd("SMEMBERS").arg(key).query_async(&mut self.conn()).await.map_err(|e| {
                failed(format!("read the cancelled tasks of worker `{}` on queue `{queue}`", worker.id), e)
            })?;
        Ok(seqs.into_iter().map(|seq| task_id(number, seq)).collect())
    }

    /// [`Backend::unserved`](errand_runtime::Backend::unserved).
    pub(crate) async fn unserved_jobs(&self, queue: &str, served: &[&'static str]) -> Result<Vec<Unserved>, Error> {
        let base = self.inner.keys.base(queue);
        let lua = &self.inner.scripts.unserved;
        let mut cmd = lua.call(&[&format!("{base}jobs")]);
        cmd.arg(&base).arg(served);
        let what = format!("look for unserved jobs on queue `{queue}`");
        let value = lua.run(&mut self.conn(), &cmd).await.map_err(|e| failed(what.as_str(), e))?;
        let items = reply::into_array(value, &what)?;
        if items.len() % 3 != 0 {
            return Err(malformed(what, format!("the unserved script returned {} values", items.len())));
        }
        let mut items = items.into_iter();
        let mut found = Vec::new();
        while let (Some(job), Some(n), Some(oldest)) = (items.next(), items.next(), items.next()) {
            let Some(job) = reply::string(job) else {
                return Err(malformed(what, "the unserved script returned a job without a name"));
            };
            let n = count(&n, &format!("{what} (job `{job}`)"))?;
            let Some(oldest) = int(&oldest) else {
                return Err(malformed(what, format!("the unserved script returned no due time for job `{job}`")));
            };
            found.push(Unserved { job, count: n, oldest: Timestamp(oldest) });
        }
        Ok(found)
    }

    /// [`Backend::bury_unserved`](errand_runtime::Backend::bury_unserved):
    /// bury script calls of [`MOVE_BATCH`] tasks until none is left.
    pub(crate) async fn bury_waiting(
        &self,
        queue: &str,
        job: &str,
        due_before: Timestamp,
        reason: &str,
    ) -> Result<u64, Error> {
        let base = self.inner.keys.base(queue);
        let lua = &self.inner.scripts.bury;
        let what = format!("bury the unserved tasks of job `{job}` on queue `{queue}`");
        let mut buried = 0;
        let mut offset: u64 = 0;
        loop {
            let mut cmd = lua.call(&[&format!("{base}n"), &format!("{base}dead")]);
            cmd.arg(&base)
                .arg(self.now().as_millis())
                .arg(job)
                .arg(due_before.as_millis())
                .arg(reason)
                .arg(offset)
                .arg(MOVE_BATCH)
                .arg(millis(self.inner.tuning.retention));
            let value = lua.run(&mut self.conn(), &cmd).await.map_err(|e| failed(what.as_str(), e))?;
            let items = reply::into_array(value, &what)?;
            let [n, more, next] = items.as_slice() else {
                return Err(malformed(what, format!("the bury script returned {} values, not 3", items.len())));
            };
            buried += count(n, &what)?;
            if int(more) != Some(1) {
                return Ok(buried);
            }
            offset = count(next, &what)?;
        }
    }
}
