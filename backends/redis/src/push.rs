//! Writing new tasks: one enqueue script call per queue and chunk, the
//! calls of one push pipelined.

use std::fmt::Write as _;

use errand_runtime::backend::NewTask;
use errand_runtime::{Codec, Error, TaskId};
use redis::Cmd;

use crate::RedisBackend;
use crate::keys::{SEQ_BITS, task_id};
use crate::pipeline::run_many;
use crate::record::{self, millis};
use crate::reply::{self, int, malformed, unexpected};

/// Tasks written per enqueue script call.
const ENQUEUE_CHUNK: usize = 500;
/// The latest run_at a ready-set member holds (13 digits).
const MAX_READY_AT: i64 = 9_999_999_999_999;

impl<C: Codec> RedisBackend<C> {
    /// [`Backend::push`](errand_runtime::Backend::push): the tasks of each
    /// queue in calls of [`ENQUEUE_CHUNK`], then a wake-up of the queue.
    pub(crate) async fn push_tasks(&self, tasks: Vec<NewTask>) -> Result<Vec<TaskId>, Error> {
        let now = self.now().as_millis();
        let mut ids = vec![TaskId(0); tasks.len()];
        // Group by queue, keeping each task's position.
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, task) in tasks.iter().enumerate() {
            match groups.iter_mut().find(|(q, _)| *q == task.queue) {
                Some((_, positions)) => positions.push(i),
                None => groups.push((task.queue.clone(), vec![i])),
            }
        }
        for (queue, positions) in &groups {
            let number = self.queue_number(queue).await?;
            let base = self.inner.keys.base(queue);
            let mut calls = Vec::with_capacity(positions.len().div_ceil(ENQUEUE_CHUNK));
            for chunk in positions.chunks(ENQUEUE_CHUNK) {
                let chunk: Vec<&NewTask> = chunk.iter().map(|&i| &tasks[i]).collect();
                calls.push(self.enqueue_call(queue, &base, now, &chunk)?);
            }
            let what = format!("enqueue {} task(s) on queue `{queue}`", positions.len());
            let replies = run_many(&self.inner.conn, &self.inner.scripts.enqueue, calls, &what).await?;
            let mut seqs = Vec::with_capacity(positions.len());
            for value in replies {
                for item in reply::into_array(value, &what)? {
                    let seq = int(&item)
                        .and_then(|s| u64::try_from(s).ok())
                        .ok_or_else(|| unexpected(what.as_str(), &item))?;
                    if seq >> SEQ_BITS != 0 {
                        return Err(malformed(what, "the queue ran out of task ids (2^40 per queue)"));
                    }
                    seqs.push(seq);
                }
            }
            if seqs.len() != positions.len() {
                return Err(malformed(
                    what,
                    format!("the enqueue script returned {} ids for {} tasks", seqs.len(), positions.len()),
                ));
            }
            for (&i, seq) in positions.iter().zip(seqs) {
                ids[i] = task_id(number, seq);
            }
            self.inner.notifier.notify(queue);
        }
        Ok(ids)
    }

    fn enqueue_call(&self, queue: &str, base: &str, now: i64, tasks: &[&NewTask]) -> Result<Cmd, Error> {
        let lua = &self.inner.scripts.enqueue;
        let mut cmd = lua.call(&[&format!("{base}seq"), &format!("{base}n"), &format!("{base}jobs")]);
        cmd.arg(base).arg(now).arg(&self.inner.channel).arg(queue).arg(tasks.len());
        // Groups of consecutive tasks with the same settings: the script reads
        // those once per group, and two values per task.
        let same = |a: &NewTask, b: &NewTask| {
            a.job == b.job
                && a.priority == b.priority
                && (a.run_at.as_millis() <= now) == (b.run_at.as_millis() <= now)
                && a.unique_key.is_none()
                && b.unique_key.is_none()
        };
        let mut run_at = String::with_capacity(16);
        let mut stored = Vec::new();
        for group in tasks.chunk_by(|a, b| same(a, b)) {
            let first = group[0];
            cmd.arg(group.len())
                .arg(first.job)
                .arg(first.priority)
                .arg(if first.run_at.as_millis() <= now { "1" } else { "0" })
                .arg(first.unique_key.as_deref().unwrap_or(""))
                .arg(first.unique_for.map_or(0, millis));
            for task in group {
                record::write(&mut stored, task, now)
                    .map_err(|e| Error::Config(format!("cannot enqueue a task of job `{}`: {e}", task.job)))?;
                run_at.clear();
                // 13 digits: the start of the ready-set member (see the crate
                // docs); a time before 1970 or after 2286 is clamped.
                let _ = write!(run_at, "{:013}", task.run_at.as_millis().clamp(0, MAX_READY_AT));
                cmd.arg(&stored).arg(run_at.as_str());
            }
        }
        Ok(cmd)
    }
}
