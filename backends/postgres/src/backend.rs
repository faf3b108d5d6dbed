//! `impl Backend for PostgresBackend`: push, claim, ack, heartbeat, rescue, release.

use std::sync::PoisonError;
use std::time::Duration;

use errand_runtime::{
    Ack, Backend, Claimed, Codec, Error, NewTask, Outcome, TaskId, Timestamp, Unserved, WakeSignal, WorkerRegistration,
};
use sqlx::{Connection, PgExecutor, Row};

use crate::copy::COPY_AT_LEAST;
use crate::doubt;
use crate::listener::Listener;
use crate::rows::{self, ClaimRow, query_error};
use crate::{NAME, PUSH_BATCH, PostgresBackend};

/// Claims a worker keeps in flight.
const PARALLEL_CLAIMS: usize = 4;
/// Rows a claim fetches on a busy queue of quick jobs. Measured on a 2-core
/// VM, drain of 200k at concurrency 64: claims of ~32 rows ran 39–42k
/// jobs/s, of ~64 52–55k, of 128 51–60k, of 256 59–63k (1M queued: 128
/// 47–56k, 256 53–60k).
const FULL_CLAIM: usize = 256;

impl<C: Codec> Backend for PostgresBackend<C> {
    type Codec = C;
    type Waiter = WakeSignal;

    fn name(&self) -> &'static str {
        NAME
    }

    async fn push(&self, tasks: Vec<NewTask>) -> Result<Vec<TaskId>, Error> {
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        let now = Timestamp::now();
        let operation = || format!("enqueue {} task(s) on schema `{}`", tasks.len(), self.inner.schema);
        let pushing = crate::announce::Pushing::enter(&self.inner.pushing);
        let mut conn = self.inner.pool.acquire().await.map_err(query_error(operation()))?;
        let unique = tasks.iter().any(|t| t.unique_key.is_some());
        let by_copy = tasks.len() >= COPY_AT_LEAST && !unique;
        let several = by_copy || tasks.len() > PUSH_BATCH || unique;
        // A lone enqueue NOTIFYs inside its own statement: no other enqueue
        // waits on the notify lock, and it saves a statement.
        let notify_inside = !several && pushing.alone();
        let ids = if several {
            // Several statements: one transaction.
            let mut tx = conn.begin().await.map_err(query_error(operation()))?;
            let ids = if by_copy {
                crate::copy::copy_in(&mut tx, &self.inner.queries, &tasks, now).await?
            } else {
                self.insert(&mut tx, &tasks, now, None).await?
            };
            tx.commit().await.map_err(query_error(operation()))?;
            ids
        } else {
            let channel = notify_inside.then_some(self.inner.channel.as_str());
            self.insert(&mut conn, &tasks, now, channel).await?
        };
        drop(pushing);
        // Wake this process's workers at once, then the other processes'.
        let mut queues: Vec<&str> = Vec::new();
        for task in &tasks {
            if !queues.contains(&task.queue.as_str()) {
                queues.push(&task.queue);
                self.inner.notifier.notify(&task.queue);
            }
        }
        if !notify_inside {
            self.announce(&queues);
        }
        Ok(ids)
    }

    async fn claim(&self, worker: &WorkerRegistration, max: usize) -> Result<Claimed, Error> {
        if max == 0 {
            return Ok(Claimed::default());
        }
        let operation = || format!("claim tasks of job `{}` from queue `{}`", worker.job, worker.queue);
        self.release_doubtful_claims(worker).await;
        let now = Timestamp::now();
        let token = self.inner.doubts.token();
        let found = sqlx::query(&self.inner.queries.claim)
            .bind(&*worker.id)
            .bind(now.as_millis())
            .bind(&*worker.queue)
            .bind(worker.job)
            .bind(i64::try_from(max).unwrap_or(i64::MAX))
            .bind(token)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(|error| {
                if doubt::may_have_committed(&error) {
                    self.inner.doubts.record(&worker.id, token);
                }
                query_error(operation())(error)
            })?;

        let mut claimed = Claimed { tasks: Vec::with_capacity(found.len()), next_due: None };
        let mut unreadable = Vec::new();
        for row in &found {
            match rows::claim_row(row) {
                Ok(ClaimRow::Task(task)) => {
                    // A workflow step: its ack (by this process) advances the run.
                    if let Ok(Some(run)) = row.try_get::<Option<i64>, _>("run_id") {
                        self.inner.claimed_steps.lock().unwrap_or_else(PoisonError::into_inner).insert(task.id.0, run);
                    }
                    claimed.tasks.push(task);
                }
                Ok(ClaimRow::NextDue(due)) => claimed.next_due = due,
                Err((Some(id), error)) => unreadable.push((id, error)),
                Err((None, error)) => {
                    // The claim committed but its rows cannot be delivered:
                    // put them all back rather than leave them running.
                    self.inner.doubts.record(&worker.id, token);
                    return Err(error);
                }
            }
        }
        // RETURNING comes in no particular order.
        claimed
            .tasks
            .sort_unstable_by(|a, b| b.priority.cmp(&a.priority).then(a.run_at.cmp(&b.run_at)).then(a.id.cmp(&b.id)));
        if !unreadable.is_empty()
            && let Err(error) = self.bury(worker, unreadable, now).await
        {
            // Put back the whole claim; the next one buries them again.
            self.inner.doubts.record(&worker.id, token);
            return Err(error);
        }
        Ok(claimed)
    }

    async fn ack(&self, worker: &WorkerRegistration, acks: &[Ack]) -> Result<(), Error> {
        if acks.is_empty() {
            return Ok(());
        }
        // Workflow steps claimed by this process advance their runs in one
        // transaction with the rest of the batch; without any, one statement.
        let steps = self.take_claimed_steps(acks);
        if !steps.is_empty() {
            let result = crate::workflow::ack_with_steps(self, worker, acks, &steps).await;
            if result.is_ok() {
                self.finished(u64::try_from(acks.len()).unwrap_or(u64::MAX));
            } else {
                // The worker retries the batch: it must take this path again.
                let mut claimed = self.inner.claimed_steps.lock().unwrap_or_else(PoisonError::into_inner);
                claimed.extend(steps.iter().map(|(ack, run)| (ack.id.0, *run)));
            }
            return result;
        }
        let operation =
            || format!("record {} outcome(s) of job `{}` on queue `{}`", acks.len(), worker.job, worker.queue);
        let (applied, wake) = self
            .ack_batch(&self.inner.pool, worker, acks.iter(), Timestamp::now())
            .await
            .map_err(query_error(operation()))?;
        self.finished(u64::try_from(applied).unwrap_or(0));
        if usize::try_from(applied).ok() != Some(acks.len()) {
            tracing::debug!(
                worker = %worker.id,
                ignored = acks.len() as i64 - applied,
                "postgres: ignored the acks of tasks no longer running for this worker"
            );
        }
        if wake {
            // The task runs again later: let idle workers learn its due time.
            self.inner.notifier.notify(&worker.queue);
        }
        Ok(())
    }

    async fn heartbeat(&self, worker: &WorkerRegistration) -> Result<(), Error> {
        self.release_doubtful_claims(worker).await;
        sqlx::query(&self.inner.queries.heartbeat)
            .bind(&*worker.id)
            .bind(&*worker.queue)
            .bind(worker.job)
            .bind(i32::try_from(worker.concurrency).unwrap_or(i32::MAX))
            .bind(worker.started_at.as_millis())
            .bind(Timestamp::now().as_millis())
            .execute(&self.inner.pool)
            .await
            .map_err(query_error(format!("record a heartbeat of worker `{}`", worker.id)))?;
        Ok(())
    }

    async fn rescue_orphans(&self) -> Result<u64, Error> {
        let now = Timestamp::now();
        let row = sqlx::query(&self.inner.queries.rescue)
            .bind(now.as_millis())
            .bind(now.sub(self.orphan_after).as_millis())
            .bind(&self.inner.channel)
            .fetch_one(&self.inner.pool)
            .await
            .map_err(query_error(format!("rescue orphaned tasks in schema `{}`", self.inner.schema)))?;
        let rescued: i64 = row.try_get(0).map_err(|e| rows::bad_data("the rescued count", e.to_string()))?;
        self.cleanup_if_due().await;
        Ok(u64::try_from(rescued).unwrap_or(0))
    }

    async fn release(&self, worker: &WorkerRegistration) -> Result<u64, Error> {
        let row = sqlx::query(&self.inner.queries.release)
            .bind(&*worker.id)
            .bind(&self.inner.channel)
            .fetch_one(&self.inner.pool)
            .await
            .map_err(query_error(format!("release the tasks of worker `{}`", worker.id)))?;
        let released: i64 = row.try_get(0).map_err(|e| rows::bad_data("the released count", e.to_string()))?;
        Ok(u64::try_from(released).unwrap_or(0))
    }

    async fn cancelled_tasks(&self, worker: &WorkerRegistration) -> Result<Vec<TaskId>, Error> {
        let ids: Vec<i64> = sqlx::query_scalar(&self.inner.queries.cancelled_tasks)
            .bind(&*worker.id)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(query_error(format!("read the cancelled tasks of worker `{}`", worker.id)))?;
        ids.into_iter().map(rows::task_id).collect()
    }

    async fn unserved(&self, queue: &str, served: &[&'static str]) -> Result<Vec<Unserved>, Error> {
        let found = sqlx::query(&self.inner.queries.unserved)
            .bind(queue)
            .bind(served)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(query_error(format!("look for unserved jobs on queue `{queue}`")))?;
        let what = format!("the unserved jobs of queue `{queue}`");
        found
            .iter()
            .map(|row| {
                let job: String = row.try_get(0).map_err(|e| rows::bad_data(&what, e.to_string()))?;
                let count: i64 = row.try_get(1).map_err(|e| rows::bad_data(&what, e.to_string()))?;
                let oldest: i64 = row.try_get(2).map_err(|e| rows::bad_data(&what, e.to_string()))?;
                Ok(Unserved { job, count: u64::try_from(count).unwrap_or(0), oldest: Timestamp(oldest) })
            })
            .collect()
    }

    async fn bury_unserved(&self, queue: &str, job: &str, due_before: Timestamp, reason: &str) -> Result<u64, Error> {
        let buried = sqlx::query(&self.inner.queries.bury_unserved)
            .bind(queue)
            .bind(job)
            .bind(due_before.as_millis())
            .bind(reason)
            .bind(Timestamp::now().as_millis())
            .execute(&self.inner.pool)
            .await
            .map_err(query_error(format!("bury the unserved tasks of job `{job}` on queue `{queue}`")))?;
        Ok(buried.rows_affected())
    }

    fn waiter(&self, queue: &str) -> WakeSignal {
        self.inner.listener.get_or_init(|| {
            Listener::start(
                self.inner.pool.clone(),
                self.inner.channel.clone(),
                self.inner.notifier.clone(),
                self.inner.location.clone(),
            )
        });
        self.inner.notifier.subscribe(queue)
    }

    fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    /// A claim is a round trip to the server: keep a few in flight.
    fn parallel_claims(&self) -> usize {
        PARALLEL_CLAIMS
    }

    /// A claim statement costs the server about the same for 30 rows as for
    /// 256: on a busy queue of quick jobs, leave room for four claims of 256
    /// rows (`PARALLEL_CLAIMS` of `FULL_CLAIM`). (The worker holds
    /// only as many as its slots finish in ~5 ms, so slow jobs are not
    /// buffered whatever this says.)
    fn buffer(&self, concurrency: usize) -> usize {
        (FULL_CLAIM * PARALLEL_CLAIMS).saturating_sub(concurrency).max(concurrency)
    }

    fn orphan_after(&self) -> Duration {
        self.orphan_after
    }
}

impl<C: Codec> PostgresBackend<C> {
    /// Records `acks` with one statement (ack.sql) on `executor`. Returns how
    /// many were applied, and whether a task runs again later (retry, snooze).
    pub(crate) async fn ack_batch<'a, 'e, E: PgExecutor<'e>>(
        &self,
        executor: E,
        worker: &WorkerRegistration,
        acks: impl Iterator<Item = &'a Ack>,
        now: Timestamp,
    ) -> Result<(i64, bool), sqlx::Error> {
        let mut done = (Vec::new(), Vec::new());
        let mut retry = (Vec::new(), Vec::new(), Vec::new());
        let mut dead = (Vec::new(), Vec::new());
        let mut snooze = (Vec::new(), Vec::new());
        for ack in acks {
            let id = i64::try_from(ack.id.0).unwrap_or(i64::MAX);
            match &ack.outcome {
                Outcome::Done { result } => {
                    done.0.push(id);
                    done.1.push(result.as_slice());
                }
                Outcome::Retry { at, error } => {
                    retry.0.push(id);
                    retry.1.push(at.as_millis());
                    retry.2.push(error.as_str());
                }
                Outcome::Dead { error } => {
                    dead.0.push(id);
                    dead.1.push(error.as_str());
                }
                Outcome::Snooze { at } => {
                    snooze.0.push(id);
                    snooze.1.push(at.as_millis());
                }
            }
        }
        let applied: i64 = sqlx::query_scalar(&self.inner.queries.ack)
            .bind(&*worker.id)
            .bind(now.as_millis())
            .bind(&done.0)
            .bind(&done.1)
            .bind(&retry.0)
            .bind(&retry.1)
            .bind(&retry.2)
            .bind(&dead.0)
            .bind(&dead.1)
            .bind(&snooze.0)
            .bind(&snooze.1)
            .fetch_one(executor)
            .await?;
        Ok((applied, !retry.0.is_empty() || !snooze.0.is_empty()))
    }

    /// Takes the workflow step tasks of `acks` out of the claimed set, with
    /// their runs. Cheap when this process claimed no step.
    fn take_claimed_steps<'a>(&self, acks: &'a [Ack]) -> Vec<(&'a Ack, i64)> {
        let mut claimed = self.inner.claimed_steps.lock().unwrap_or_else(PoisonError::into_inner);
        if claimed.is_empty() {
            return Vec::new();
        }
        acks.iter().filter_map(|ack| claimed.remove(&ack.id.0).map(|run| (ack, run))).collect()
    }

    /// Puts back what this worker's failed claims may have taken (see
    /// [`crate::doubt`]). A failure is only logged: the claim or heartbeat
    /// that follows reports the outage, and the release is tried again.
    async fn release_doubtful_claims(&self, worker: &WorkerRegistration) {
        let tokens = self.inner.doubts.due(&worker.id);
        if tokens.is_empty() {
            return;
        }
        let released = sqlx::query_as::<_, (i64, i64)>(&self.inner.queries.release_claims)
            .bind(&*worker.id)
            .bind(&tokens)
            .bind(&self.inner.channel)
            .fetch_one(&self.inner.pool)
            .await;
        match released {
            Ok((released, _)) => {
                if released > 0 {
                    tracing::info!(
                        worker = %worker.id, released,
                        "postgres: put back tasks taken by claims whose reply was lost"
                    );
                    self.inner.notifier.notify(&worker.queue);
                }
                self.inner.doubts.released(&worker.id, &tokens);
            }
            Err(error) => {
                tracing::debug!(worker = %worker.id, %error, "postgres: could not yet put back the tasks of failed claims");
            }
        }
    }

    /// Sends claimed tasks whose rows could not be read to `dead`, with why.
    async fn bury(
        &self,
        worker: &WorkerRegistration,
        tasks: Vec<(TaskId, Error)>,
        now: Timestamp,
    ) -> Result<(), Error> {
        for (id, error) in &tasks {
            tracing::error!(%id, %error, "postgres: a claimed task could not be read; it goes dead");
        }
        let ids: Vec<i64> = tasks.iter().map(|(id, _)| i64::try_from(id.0).unwrap_or(i64::MAX)).collect();
        let errors: Vec<String> = tasks.iter().map(|(_, e)| e.to_string()).collect();
        sqlx::query(&self.inner.queries.mark_dead)
            .bind(&*worker.id)
            .bind(&ids)
            .bind(&errors)
            .bind(now.as_millis())
            .execute(&self.inner.pool)
            .await
            .map_err(query_error(format!("bury unreadable tasks of queue `{}`", worker.queue)))?;
        Ok(())
    }
}
