//! Workers' lives and what no worker serves: heartbeats, rescuing the tasks
//! of dead workers, releasing on a graceful stop, cancelled running tasks,
//! and unserved jobs.
//!
//! Liveness is judged by the server's clock alone: a heartbeat stores
//! Redis's `TIME` (the worker's last beat, and when its job was last served
//! on the queue) and sets a key that expires after `orphan_after`; rescue
//! compares with `TIME` and needs that key gone. "Since" times of unserved
//! jobs are sent as ages (this process's clock minus the time) and turned
//! into the server's clock there, so two hosts whose clocks disagree judge
//! alike.

use std::sync::atomic::Ordering;

use errand_runtime::backend::{Unserved, WorkerRegistration};
use errand_runtime::{Codec, Error, TaskId, Timestamp};
use redis::Cmd;

use crate::RedisBackend;
use crate::claim::MOVE_BATCH;
use crate::keys::task_id;
use crate::pipeline::run_many;
use crate::record::{millis, retention_ms};
use crate::reply::{self, count, failed, int, malformed};

impl<C: Codec> RedisBackend<C> {
    /// [`Backend::heartbeat`](errand_runtime::Backend::heartbeat): registers
    /// the queue (so that a worker's first beat makes its queue known) and
    /// the worker, and records that its job is served on the queue.
    pub(crate) async fn beat(&self, worker: &WorkerRegistration) -> Result<(), Error> {
        let queue = &*worker.queue;
        self.queue_number(queue).await?;
        let base = self.inner.keys.base(queue);
        let lua = &self.inner.scripts.heartbeat;
        let mut cmd = lua.call(&[
            &format!("{base}hb:{}", worker.id),
            &format!("{base}w"),
            &format!("{base}wi"),
            &format!("{base}sv"),
        ]);
        let details = format!("{}\t{}\t{}", worker.job, worker.concurrency, worker.started_at.as_millis());
        cmd.arg(&base).arg(&*worker.id).arg(millis(self.inner.tuning.orphan_after).max(1)).arg(details).arg(worker.job);
        lua.run(&mut self.conn(), &cmd)
            .await
            .map_err(|e| failed(format!("heartbeat of worker `{}` on queue `{queue}`", worker.id), e))?;
        Ok(())
    }

    /// [`Backend::rescue_orphans`](errand_runtime::Backend::rescue_orphans):
    /// one rescue script call per queue, pipelined.
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
                    .arg(retention_ms(self.inner.tuning.retention));
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
            &format!("{base}cl:{id}"),
        ]);
        // Claims this handle gave out before (one of them may still be
        // queued somewhere) are refused from now on.
        let floor = self.inner.claim_tokens.load(Ordering::Relaxed) + 1;
        cmd.arg(&base).arg(self.now().as_millis()).arg(id).arg(&self.inner.channel).arg(queue).arg(floor);
        let what = format!("release the tasks of worker `{id}` on queue `{queue}`");
        let value = lua.run(&mut self.conn(), &cmd).await.map_err(|e| failed(what.as_str(), e))?;
        self.forget_claims(&worker.id);
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

    /// [`Backend::unserved`](errand_runtime::Backend::unserved): `since`
    /// goes to the script as an age, compared on the server's clock.
    pub(crate) async fn unserved_jobs(&self, queue: &str, since: Timestamp) -> Result<Vec<Unserved>, Error> {
        let base = self.inner.keys.base(queue);
        let lua = &self.inner.scripts.unserved;
        let mut cmd = lua.call(&[&format!("{base}jobs"), &format!("{base}sv")]);
        cmd.arg(&base).arg(self.age(since));
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

    /// How long ago `since` was by this process's clock, in ms (negative
    /// for a time ahead): what the scripts subtract from the server's `TIME`.
    fn age(&self, since: Timestamp) -> i64 {
        self.now().as_millis().saturating_sub(since.as_millis())
    }

    /// [`Backend::bury_unserved`](errand_runtime::Backend::bury_unserved):
    /// bury script calls of [`MOVE_BATCH`] tasks until none is left; each
    /// call checks first that the job is still unserved since `since`.
    pub(crate) async fn bury_waiting(
        &self,
        queue: &str,
        job: &str,
        due_before: Timestamp,
        since: Timestamp,
        reason: &str,
    ) -> Result<u64, Error> {
        let base = self.inner.keys.base(queue);
        let lua = &self.inner.scripts.bury;
        let what = format!("bury the unserved tasks of job `{job}` on queue `{queue}`");
        let mut buried = 0;
        let mut offset: u64 = 0;
        loop {
            let mut cmd = lua.call(&[&format!("{base}n"), &format!("{base}dead"), &format!("{base}sv")]);
            cmd.arg(&base)
                .arg(self.now().as_millis())
                .arg(job)
                .arg(due_before.as_millis())
                .arg(reason)
                .arg(offset)
                .arg(MOVE_BATCH)
                .arg(retention_ms(self.inner.tuning.retention))
                .arg(self.age(since));
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
