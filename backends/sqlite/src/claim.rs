//! Claiming tasks, and burying the claimed ones whose rows cannot be read.

use errand_runtime::backend::stored::read_task;
use errand_runtime::backend::{Claimed, WorkerRegistration};
use errand_runtime::workflow::plan::StepEnd;
use errand_runtime::{Codec, Error, TaskId, Timestamp};
use sqlx::Connection;

use crate::rows::{Stored, json_ints, query_error, raw_id};
use crate::workflow::{self, EndedStep};
use crate::{NAME, SqliteBackend, sql};

impl<C: Codec> SqliteBackend<C> {
    pub(crate) async fn claim(&self, worker: &WorkerRegistration, max: usize) -> Result<Claimed, Error> {
        if max == 0 {
            return Ok(Claimed::default());
        }
        let operation = || format!("claim tasks of job `{}` from queue `{}`", worker.job, worker.queue);
        let now = self.tuning.clock.now();
        let rows = sqlx::query(sql::CLAIM)
            .bind(&*worker.id)
            .bind(now.as_millis())
            .bind(&*worker.queue)
            .bind(worker.job)
            .bind(i64::try_from(max).unwrap_or(i64::MAX))
            .fetch_all(&self.inner.writer)
            .await
            .map_err(query_error(operation()))?;

        let mut tasks = Vec::with_capacity(rows.len());
        let mut unreadable = Vec::new();
        let mut unnamed = None;
        for row in rows.into_iter().map(Stored) {
            match read_task(NAME, &row) {
                Ok(task) => tasks.push(task),
                Err((Some(id), error)) => unreadable.push((id, error)),
                // Not even the id reads: nothing can be done with that row
                // but report it (it stays `running` until this worker
                // releases or is rescued).
                Err((None, error)) => unnamed = Some(error),
            }
        }
        if !unreadable.is_empty()
            && let Err(error) = self.bury(worker, &unreadable, now).await
        {
            // Nothing of the claim is left `running` for a worker that will
            // not run it: it is put back as it was, and the worker retries.
            let claimed = tasks.iter().map(|t| t.id).chain(unreadable.iter().map(|(id, _)| *id));
            self.unclaim(worker, claimed).await;
            return Err(error);
        }
        if let Some(error) = unnamed {
            self.unclaim(worker, tasks.iter().map(|t| t.id)).await;
            return Err(error);
        }
        // RETURNING comes in no particular order.
        tasks.sort_unstable_by(|a, b| b.priority.cmp(&a.priority).then(a.run_at.cmp(&b.run_at)).then(a.id.cmp(&b.id)));

        let next_due = if tasks.is_empty() {
            sqlx::query_scalar::<_, Option<i64>>(sql::NEXT_DUE)
                .bind(&*worker.queue)
                .bind(worker.job)
                .fetch_one(&self.inner.reader)
                .await
                .map_err(query_error(operation()))?
                .map(Timestamp)
        } else {
            None
        };
        Ok(Claimed { tasks, next_due })
    }

    /// Sends claimed tasks whose rows cannot be read to `dead` with the
    /// reason, in one transaction; a workflow step's run fails with it.
    async fn bury(&self, worker: &WorkerRegistration, tasks: &[(TaskId, Error)], now: Timestamp) -> Result<(), Error> {
        let operation = || format!("send {} unreadable task(s) claimed by worker `{}` to dead", tasks.len(), worker.id);
        let mut conn = self.inner.writer.acquire().await.map_err(query_error(operation()))?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(query_error(operation()))?;
        let mut ended = Vec::new();
        for (id, error) in tasks {
            tracing::warn!(task = %id, %error, "a claimed task's stored row cannot be read; it goes dead");
            let row = sqlx::query(sql::MARK_DEAD)
                .bind(raw_id(*id))
                .bind(error.to_string())
                .bind(now.as_millis())
                .bind(&*worker.id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(query_error(format!("send unreadable task {id} to dead")))?;
            if let Some(row) = row.map(Stored) {
                ended.extend(EndedStep::of(&row, || Ok(StepEnd::Failed(error.to_string())))?);
            }
        }
        let woken = workflow::end_steps::<C>(&mut tx, ended, now).await?;
        tx.commit().await.map_err(query_error(operation()))?;
        drop(conn);
        self.wake_all(&woken);
        Ok(())
    }

    /// Puts claimed tasks back as they were before the claim (best effort:
    /// should that fail too, they stay `running` until this worker releases
    /// them or is rescued).
    async fn unclaim(&self, worker: &WorkerRegistration, ids: impl Iterator<Item = TaskId>) {
        let ids = json_ints(ids.map(raw_id));
        let put_back = sqlx::query(sql::UNCLAIM).bind(&ids).bind(&*worker.id).execute(&self.inner.writer).await;
        match put_back {
            Ok(_) => self.inner.notifier.notify(&worker.queue),
            Err(error) => tracing::warn!(
                worker = %worker.id,
                tasks = %ids,
                %error,
                "could not put back a claim that failed; its tasks wait for the worker's release or rescue"
            ),
        }
    }
}
