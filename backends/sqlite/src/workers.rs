//! Workers' lifecycle and housekeeping: heartbeat, rescue of lost workers'
//! tasks, release, cancelled runs, progress reports, and tasks no worker
//! serves.

use std::collections::HashSet;

use errand_runtime::backend::stored::{StoredRow, read_unserved, task_id};
use errand_runtime::backend::{Unserved, WorkerRegistration};
use errand_runtime::workflow::plan::StepEnd;
use errand_runtime::{Codec, Error, Progress, TaskId, Timestamp};
use sqlx::Connection;

use crate::encode::JsonRows;
use crate::rows::{Stored, bad_data, query_error, raw_id, stored};
use crate::workflow::{self, EndedStep};
use crate::{NAME, SqliteBackend, sql};

impl<C: Codec> SqliteBackend<C> {
    /// Refreshes the worker's row and records that its job is served on its
    /// queue, in one write transaction.
    pub(crate) async fn heartbeat(&self, worker: &WorkerRegistration) -> Result<(), Error> {
        let operation = || format!("record a heartbeat of worker `{}`", worker.id);
        // Liveness by this machine's clock (SQLite has no server clock).
        let now = Timestamp::now().as_millis();
        let mut conn = self.inner.writer.acquire().await.map_err(query_error(operation()))?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(query_error(operation()))?;
        sqlx::query(sql::HEARTBEAT)
            .bind(&*worker.id)
            .bind(&*worker.queue)
            .bind(worker.job)
            .bind(i64::try_from(worker.concurrency).unwrap_or(i64::MAX))
            .bind(worker.started_at.as_millis())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(query_error(operation()))?;
        sqlx::query(sql::SERVE)
            .bind(&*worker.queue)
            .bind(worker.job)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(query_error(operation()))?;
        tx.commit().await.map_err(query_error(operation()))?;
        Ok(())
    }

    pub(crate) async fn rescue_orphans(&self) -> Result<u64, Error> {
        let operation = || "rescue the tasks of lost workers".to_owned();
        let now = self.tuning.clock.now();
        // Liveness by this machine's clock, as heartbeats record it.
        let cutoff = Timestamp::now().sub(self.tuning.orphan_after);
        let mut conn = self.inner.writer.acquire().await.map_err(query_error(operation()))?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(query_error(operation()))?;
        let rescued = sqlx::query(sql::RESCUE)
            .bind(now.as_millis())
            .bind(cutoff.as_millis())
            .fetch_all(&mut *tx)
            .await
            .map_err(query_error(operation()))?;
        let rescued = stored(rescued);
        // A step that went dead on its last attempt fails its run.
        let mut ended = Vec::new();
        let mut requeued: Vec<String> = Vec::new();
        for row in &rescued {
            let what = "a rescued task";
            let state = row.text("state").map_err(|e| bad_data(what, format!("column `state`: {e}")))?;
            if state.as_deref() == Some("dead") {
                let end = || {
                    let error = row.text("last_error").map_err(|e| bad_data(what, format!("column `last_error`: {e}")));
                    Ok(StepEnd::Failed(error?.unwrap_or_default()))
                };
                ended.extend(EndedStep::of(row, end)?);
            } else if let Ok(Some(queue)) = row.text("queue")
                && !requeued.contains(&queue)
            {
                requeued.push(queue);
            }
        }
        let mut woken = workflow::end_steps::<C>(&mut tx, ended, now).await?;
        sqlx::query(sql::FORGET_LOST_CANCELLED)
            .bind(cutoff.as_millis())
            .execute(&mut *tx)
            .await
            .map_err(query_error(operation()))?;
        sqlx::query(sql::DELETE_STALE_WORKERS)
            .bind(cutoff.as_millis())
            .execute(&mut *tx)
            .await
            .map_err(query_error(operation()))?;
        tx.commit().await.map_err(query_error(operation()))?;
        drop(conn);

        woken.extend(requeued);
        self.wake_all(&woken);
        if !rescued.is_empty() {
            tracing::info!(tasks = rescued.len(), "rescued the running tasks of workers that stopped heartbeating");
        }
        Ok(rescued.len() as u64)
    }

    pub(crate) async fn release(&self, worker: &WorkerRegistration) -> Result<u64, Error> {
        let operation = || format!("release the tasks of worker `{}`", worker.id);
        // Nothing more is handed to it; what was is `running` for it, put back below.
        self.inner.handoffs.forget(&worker.id);
        let mut conn = self.inner.writer.acquire().await.map_err(query_error(operation()))?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(query_error(operation()))?;
        let released = sqlx::query(sql::RELEASE)
            .bind(&*worker.id)
            .execute(&mut *tx)
            .await
            .map_err(query_error(operation()))?
            .rows_affected();
        sqlx::query(sql::FORGET_CANCELLED)
            .bind(&*worker.id)
            .execute(&mut *tx)
            .await
            .map_err(query_error(operation()))?;
        sqlx::query(sql::DELETE_WORKER).bind(&*worker.id).execute(&mut *tx).await.map_err(query_error(operation()))?;
        tx.commit().await.map_err(query_error(operation()))?;
        drop(conn);
        // Every task of the worker is back: so are those of claims it could
        // not put back (see claim.rs).
        self.inner.put_backs.forget(&worker.id);
        if released > 0 {
            self.inner.notifier.notify(&worker.queue);
        }
        Ok(released)
    }

    pub(crate) async fn cancelled_tasks(&self, worker: &WorkerRegistration) -> Result<Vec<TaskId>, Error> {
        let ids: Vec<i64> = sqlx::query_scalar(sql::CANCELLED_TASKS)
            .bind(&*worker.id)
            .fetch_all(&self.inner.reader)
            .await
            .map_err(query_error(format!("list the cancelled runs of worker `{}`", worker.id)))?;
        ids.into_iter().map(|id| task_id(NAME, id)).collect()
    }

    /// Stores the latest progress of running tasks of `worker`, the whole
    /// batch in one statement; a report for a task no longer `running` for
    /// this worker is ignored. When a batch names a task twice, its last
    /// report wins.
    pub(crate) async fn record_progress(
        &self,
        worker: &WorkerRegistration,
        updates: &[(TaskId, Progress)],
    ) -> Result<(), Error> {
        let mut seen = HashSet::with_capacity(updates.len());
        let mut rows = JsonRows::with_capacity(updates.len() * 48);
        for (id, progress) in updates.iter().rev() {
            if !seen.insert(*id) {
                continue;
            }
            // Kept within what reads back: at most 100 %, a bounded message
            // without NULs (a `Progress` built by hand may be neither).
            let progress = Progress::new(progress.percent, progress.message.as_str());
            let _ = rows.row().int(raw_id(*id)).int(progress.percent).str(&progress.message);
        }
        if rows.is_empty() {
            return Ok(());
        }
        sqlx::query(sql::RECORD_PROGRESS)
            .bind(rows.finish())
            .bind(&*worker.id)
            .execute(&self.inner.writer)
            .await
            .map_err(query_error(format!("record the progress of {} task(s) of worker `{}`", seen.len(), worker.id)))?;
        Ok(())
    }

    /// Waiting tasks of `queue`, by job, of the jobs no worker of any process
    /// has served there at or after `since` (by `errand_served_jobs`).
    pub(crate) async fn unserved(&self, queue: &str, since: Timestamp) -> Result<Vec<Unserved>, Error> {
        let rows = sqlx::query(sql::UNSERVED)
            .bind(queue)
            .bind(since.as_millis())
            .fetch_all(&self.inner.reader)
            .await
            .map_err(query_error(format!("count the waiting tasks of unserved jobs on queue `{queue}`")))?;
        read_unserved(NAME, &stored(rows), &[], queue)
    }

    /// Buries the waiting tasks of `job` on `queue` due at or before
    /// `due_before`, if no worker has served the job there since `since`:
    /// checked by the burying statements themselves, in one write
    /// transaction, so a worker that beats meanwhile keeps them all.
    pub(crate) async fn bury_unserved(
        &self,
        queue: &str,
        job: &str,
        due_before: Timestamp,
        since: Timestamp,
        reason: &str,
    ) -> Result<u64, Error> {
        let operation = || format!("bury the unserved tasks of job `{job}` on queue `{queue}`");
        let now = self.tuning.clock.now();
        let mut conn = self.inner.writer.acquire().await.map_err(query_error(operation()))?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(query_error(operation()))?;
        let plain = sqlx::query(sql::BURY_UNSERVED)
            .bind(queue)
            .bind(job)
            .bind(due_before.as_millis())
            .bind(reason)
            .bind(now.as_millis())
            .bind(since.as_millis())
            .execute(&mut *tx)
            .await
            .map_err(query_error(operation()))?
            .rows_affected();
        // Workflow steps among them fail their runs.
        let steps = sqlx::query(sql::BURY_UNSERVED_STEPS)
            .bind(queue)
            .bind(job)
            .bind(due_before.as_millis())
            .bind(reason)
            .bind(now.as_millis())
            .bind(since.as_millis())
            .fetch_all(&mut *tx)
            .await
            .map_err(query_error(operation()))?;
        let buried = plain + steps.len() as u64;
        let mut ended = Vec::with_capacity(steps.len());
        for row in steps.into_iter().map(Stored) {
            ended.extend(EndedStep::of(&row, || Ok(StepEnd::Failed(reason.to_owned())))?);
        }
        let woken = workflow::end_steps::<C>(&mut tx, ended, now).await?;
        tx.commit().await.map_err(query_error(operation()))?;
        drop(conn);
        self.wake_all(&woken);
        Ok(buried)
    }
}
