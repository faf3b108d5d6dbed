//! What dashboards and tools read and do.

use std::collections::{HashMap, HashSet};

use errand_runtime::backend::stored::{CountsBuilder, bad_data, to_u32};
use errand_runtime::capability::CancelRunning;
use errand_runtime::workflow::Bytes;
use errand_runtime::{
    Codec, Error, Expose, QueueCounts, TaskFilter, TaskId, TaskInfo, TaskState, Timestamp, WorkerInfo,
};
use redis::Value;

use crate::RedisBackend;
use crate::keys::{split_id, task_id};
use crate::record::{millis, retention_ms};
use crate::reply::{self, NAME, StoredTask, failed, int, stored_count, unexpected};

impl<C: Codec> RedisBackend<C> {
    /// Runs the cancel or retry script on one task.
    async fn change(&self, id: TaskId, retry: bool) -> Result<bool, Error> {
        let (number, seq) = split_id(id);
        let Some(queue) = self.queue_name(number).await? else { return Ok(false) };
        let base = self.inner.keys.base(&queue);
        let now = self.now().as_millis();
        let (lua, keys, what) = if retry {
            let keys = vec![format!("{base}n"), format!("{base}dead"), format!("{base}cancelled")];
            (&self.inner.scripts.retry, keys, format!("retry task {id} of queue `{queue}`"))
        } else {
            let keys = vec![format!("{base}n"), format!("{base}cancelled")];
            (&self.inner.scripts.cancel, keys, format!("cancel task {id} of queue `{queue}`"))
        };
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut cmd = lua.call(&keys);
        cmd.arg(&base).arg(now).arg(seq);
        if retry {
            cmd.arg(&self.inner.channel).arg(&queue);
        } else {
            cmd.arg(retention_ms(self.inner.tuning.retention));
        }
        let value = lua.run(&mut self.conn(), &cmd).await.map_err(|e| failed(what.as_str(), e))?;
        let changed = int(&value).ok_or_else(|| unexpected(what, &value))? == 1;
        if changed && retry {
            self.inner.notifier.notify(&queue);
        }
        Ok(changed)
    }

    /// Runs the list script on one queue (`state` `=` reads the task whose
    /// seq is `after`). Done tasks past the retention are left out even
    /// before they are purged.
    async fn list(
        &self,
        queue: &str,
        number: u32,
        state: &str,
        job: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<TaskInfo>, Error> {
        let base = self.inner.keys.base(queue);
        let lua = &self.inner.scripts.list;
        let mut cmd = lua.call(&[&format!("{base}jobs"), &format!("{base}w")]);
        cmd.arg(&base).arg(state).arg(job).arg(after).arg(limit);
        let what = format!("list the tasks of queue `{queue}`");
        let value = lua.run(&mut self.conn(), &cmd).await.map_err(|e| failed(what.as_str(), e))?;
        let expired_before = self.now().sub(self.inner.tuning.retention);
        let mut items = reply::into_array(value, &what)?.into_iter();
        let mut found = Vec::new();
        while let Some(seq) = items.next() {
            let seq = int(&seq).and_then(|s| u64::try_from(s).ok()).ok_or_else(|| unexpected(what.as_str(), &seq))?;
            let mut field = || items.next().unwrap_or(Value::Nil);
            let (record, state, error, worker, output, progress) =
                (field(), field(), field(), field(), field(), field());
            let id = task_id(number, seq);
            let stored = StoredTask { record, state, error, worker, progress };
            let mut info = reply::task_info(id, queue, stored)?;
            if info.state == TaskState::Done
                && info.result.is_none()
                && let Some(element) = reply::bytes(output)
            {
                // A workflow step's output, kept once, in its run.
                let what = format!("the output of task {id} of queue `{queue}`, kept in its workflow run");
                info.result = Some(C::decode::<Bytes>(&element, &what)?.0);
            }
            if info.state == TaskState::Done && info.finished_at.is_some_and(|f| f <= expired_before) {
                continue;
            }
            found.push(info);
        }
        Ok(found)
    }
}

impl<C: Codec> Expose for RedisBackend<C> {
    async fn counts(&self) -> Result<Vec<QueueCounts>, Error> {
        let queues = self.all_queues().await?;
        if queues.is_empty() {
            return Ok(Vec::new());
        }
        // Per queue, its counts and its `paused` flag.
        let mut pipe = redis::pipe();
        for (queue, _) in &queues {
            let base = self.inner.keys.base(queue);
            pipe.cmd("HMGET").arg(format!("{base}n")).arg(&TaskState::ALL.map(TaskState::as_str));
            pipe.cmd("EXISTS").arg(format!("{base}paused"));
        }
        let rows: Vec<Value> =
            pipe.query_async(&mut self.conn()).await.map_err(|e| failed("read the task counts", e))?;
        if rows.len() != 2 * queues.len() {
            return Err(reply::malformed(
                "read the task counts",
                format!("{} replies came back for {} queues", rows.len(), queues.len()),
            ));
        }
        let mut counts = CountsBuilder::new(NAME);
        let mut paused = HashSet::new();
        let mut rows = rows.into_iter();
        for (queue, _) in queues {
            let (Some(row), Some(flag)) = (rows.next(), rows.next()) else { break };
            match int(&flag) {
                Some(0) => {}
                Some(1) => {
                    paused.insert(queue.clone());
                }
                _ => return Err(unexpected(format!("read whether queue `{queue}` is paused"), &flag)),
            }
            let what = format!("task counts of queue `{queue}`");
            let row = reply::into_array(row, &format!("read the {what}"))?;
            if row.len() != TaskState::ALL.len() {
                return Err(reply::malformed(format!("read the {what}"), format!("{} counts came back", row.len())));
            }
            for (state, n) in TaskState::ALL.into_iter().zip(&row) {
                let n = stored_count(n, &what, state.as_str())?;
                counts.add(queue.clone(), state.as_str(), n)?;
            }
        }
        let mut counts = counts.finish();
        // Every registered queue is listed (a paused one was registered by
        // `pause_queue`), with all its states.
        for c in &mut counts {
            c.paused = paused.contains(&c.queue);
        }
        Ok(counts)
    }

    async fn tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskInfo>, Error> {
        let limit = if filter.limit == 0 { 100 } else { filter.limit };
        let mut queues = self.all_queues().await?;
        if let Some(only) = &filter.queue {
            queues.retain(|(name, _)| name == only);
        }
        let (after_queue, after_seq) = filter.after.map_or((0, 0), split_id);
        queues.retain(|(_, n)| *n >= after_queue);
        queues.sort_by_key(|(_, n)| *n);
        let mut found = Vec::new();
        // Queues in id order: stop once a page is full.
        for (queue, number) in queues {
            if found.len() >= limit as usize {
                break;
            }
            let after = if number == after_queue { after_seq } else { 0 };
            let state = filter.state.map_or("", TaskState::as_str);
            let job = filter.job.as_deref().unwrap_or("");
            found.extend(self.list(&queue, number, state, job, after, limit as usize - found.len()).await?);
        }
        found.truncate(limit as usize);
        Ok(found)
    }

    async fn task(&self, id: TaskId) -> Result<Option<TaskInfo>, Error> {
        let (number, seq) = split_id(id);
        let Some(queue) = self.queue_name(number).await? else { return Ok(None) };
        Ok(self.list(&queue, number, "=", "", seq, 1).await?.pop())
    }

    async fn workers(&self) -> Result<Vec<WorkerInfo>, Error> {
        let queues = self.all_queues().await?;
        if queues.is_empty() {
            return Ok(Vec::new());
        }
        // Live: beaten within orphan_after by the server's clock, which the
        // heartbeats store (its `TIME`, read in the same round trip).
        let mut pipe = redis::pipe();
        pipe.cmd("TIME");
        for (queue, _) in &queues {
            let base = self.inner.keys.base(queue);
            pipe.cmd("ZRANGE").arg(format!("{base}w")).arg(0).arg(-1).arg("WITHSCORES");
            pipe.cmd("HGETALL").arg(format!("{base}wi"));
        }
        type Row = (Vec<(String, f64)>, HashMap<String, String>);
        let read = |e: redis::ParsingError| failed("read the live workers", e.into());
        let (server_now, rows): (i64, Vec<Row>) = {
            let values: Vec<Value> =
                pipe.query_async(&mut self.conn()).await.map_err(|e| failed("read the live workers", e))?;
            let mut values = values.into_iter();
            let (secs, micros): (i64, i64) =
                redis::from_redis_value(values.next().unwrap_or(Value::Nil)).map_err(read)?;
            let mut rows = Vec::with_capacity(queues.len());
            while let (Some(seen), Some(details)) = (values.next(), values.next()) {
                rows.push((
                    redis::from_redis_value(seen).map_err(read)?,
                    redis::from_redis_value(details).map_err(read)?,
                ));
            }
            (secs.saturating_mul(1000).saturating_add(micros / 1000), rows)
        };
        let cutoff =
            server_now.saturating_sub(i64::try_from(millis(self.inner.tuning.orphan_after)).unwrap_or(i64::MAX));
        let mut workers = Vec::new();
        for ((queue, _), (seen, details)) in queues.into_iter().zip(rows) {
            for (id, last_seen) in seen {
                if last_seen < cutoff as f64 {
                    continue; // not seen within orphan_after: not live
                }
                let what = format!("worker `{id}` of queue `{queue}`");
                let bad = |problem: &str| bad_data(NAME, &what, problem);
                let detail = details.get(&id).ok_or_else(|| bad("its details are missing"))?;
                let mut parts = detail.split('\t');
                let job = parts.next().filter(|j| !j.is_empty()).ok_or_else(|| bad("its job is missing"))?;
                let concurrency = parts
                    .next()
                    .and_then(|c| c.parse::<i64>().ok())
                    .ok_or_else(|| bad("its concurrency is not a number"))?;
                let started_at = parts
                    .next()
                    .and_then(|s| s.parse::<i64>().ok())
                    .ok_or_else(|| bad("its start is not a time in ms"))?;
                if !last_seen.is_finite() || last_seen.fract() != 0.0 {
                    return Err(bad("its last heartbeat is not a time in ms"));
                }
                workers.push(WorkerInfo {
                    id,
                    queue: queue.clone(),
                    job: job.to_owned(),
                    concurrency: to_u32(NAME, concurrency, "concurrency", &what)?,
                    started_at: Timestamp(started_at),
                    last_seen: Timestamp(last_seen as i64),
                });
            }
        }
        workers.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(workers)
    }

    async fn retry_task(&self, id: TaskId) -> Result<bool, Error> {
        self.change(id, true).await
    }

    async fn delete_task(&self, id: TaskId) -> Result<bool, Error> {
        let (number, seq) = split_id(id);
        let Some(queue) = self.queue_name(number).await? else { return Ok(false) };
        let base = self.inner.keys.base(&queue);
        let lua = &self.inner.scripts.delete;
        let mut cmd = lua.call(&[&format!("{base}n"), &format!("{base}dead"), &format!("{base}cancelled")]);
        cmd.arg(&base).arg(seq);
        let what = format!("delete task {id} of queue `{queue}`");
        let value = lua.run(&mut self.conn(), &cmd).await.map_err(|e| failed(what.as_str(), e))?;
        Ok(int(&value).ok_or_else(|| unexpected(what, &value))? == 1)
    }

    async fn pause_queue(&self, queue: &str) -> Result<(), Error> {
        // Registered, so that `counts` lists it even without tasks.
        self.queue_number(queue).await?;
        let key = format!("{}paused", self.inner.keys.base(queue));
        redis::cmd("SET")
            .arg(key)
            .arg(1)
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(|e| failed(format!("pause queue `{queue}`"), e))
    }

    async fn resume_queue(&self, queue: &str) -> Result<(), Error> {
        let base = self.inner.keys.base(queue);
        let lua = &self.inner.scripts.resume;
        let mut cmd = lua.call(&[&format!("{base}paused")]);
        cmd.arg(&self.inner.channel).arg(queue);
        let what = format!("resume queue `{queue}`");
        let value = lua.run(&mut self.conn(), &cmd).await.map_err(|e| failed(what.as_str(), e))?;
        // Other processes are woken by the script's `PUBLISH`; this one's
        // idle workers at once, whether or not its listener runs.
        if int(&value).ok_or_else(|| unexpected(what, &value))? == 1 {
            self.inner.notifier.notify(queue);
        }
        Ok(())
    }

    async fn cancel_task(&self, id: TaskId) -> Result<bool, Error>
    where
        Self: CancelRunning,
    {
        self.change(id, false).await
    }
}
