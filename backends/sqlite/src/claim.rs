//! Claiming tasks, burying the claimed ones whose rows cannot be read, and
//! putting back a claim that could not be completed.
//!
//! A claim is one `UPDATE … RETURNING` in its own (autocommit) transaction:
//! the rows it returns are `running` for the worker once it returns. A row
//! that cannot be read (a value this version does not understand, written by
//! another program or a newer errand) goes `dead` with the read error in a
//! second transaction, and the worker gets the others. Should that fail, the
//! whole claim is put back as it was and the claim returns the error; should
//! putting it back fail too, the put-back is remembered and done before this
//! worker's next claim (or by its release), so no task stays `running` for a
//! worker that will not run it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use errand_runtime::backend::stored::{StoredRow, read_task};
use errand_runtime::backend::{Begun, Claimed, WorkerRegistration};
use errand_runtime::workflow::plan::StepEnd;
use errand_runtime::{Codec, Error, Timestamp};
use sqlx::Connection;

use crate::rows::{Stored, json_ints, query_error, raw_id};
use crate::workflow::{self, EndedStep};
use crate::{NAME, SqliteBackend, sql};

/// Claims that could not be put back yet, and tasks a hand-off may have
/// written for a worker without handing them over: put back before that
/// worker's next claim, dropped by its release. Also the source of hand-off
/// tokens.
#[derive(Debug, Default)]
pub(crate) struct PutBacks {
    pending: Mutex<Vec<(Arc<str>, PutBack)>>,
    tokens: AtomicI64,
}

/// One thing to put back for a worker.
#[derive(Debug)]
enum PutBack {
    /// The tasks of a claim, by id.
    Claimed(Vec<i64>),
    /// The task a hand-off wrote (or may have written) under this token.
    Handed(i64),
}

impl PutBacks {
    fn lock(&self) -> MutexGuard<'_, Vec<(Arc<str>, PutBack)>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add(&self, worker: &Arc<str>, ids: Vec<i64>) {
        self.lock().push((Arc::clone(worker), PutBack::Claimed(ids)));
    }

    /// A token for a hand-off, unique among this backend value's (a
    /// put-back is scoped to one worker too).
    pub(crate) fn token(&self) -> i64 {
        self.tokens.fetch_add(1, Ordering::Relaxed)
    }

    /// Remembers that a hand-off to `worker` under `token` may have written
    /// its task without handing it over.
    pub(crate) fn add_handed(&self, worker: &Arc<str>, token: i64) {
        self.lock().push((Arc::clone(worker), PutBack::Handed(token)));
    }

    /// Takes the put-backs of `worker`.
    fn take(&self, worker: &str) -> Vec<PutBack> {
        let mut all = self.lock();
        if all.is_empty() {
            return Vec::new();
        }
        let (mine, others) = std::mem::take(&mut *all).into_iter().partition(|(w, _)| &**w == worker);
        *all = others;
        mine.into_iter().map(|(_, back)| back).collect()
    }

    /// Forgets the put-backs of `worker` (its release put every task back).
    pub(crate) fn forget(&self, worker: &str) {
        let _ = self.take(worker);
    }
}

impl<C: Codec> SqliteBackend<C> {
    pub(crate) async fn claim(&self, worker: &WorkerRegistration, max: usize) -> Result<Claimed, Error> {
        self.put_back_earlier_claims(worker).await?;
        if max == 0 {
            return Ok(Claimed::default());
        }
        // Whether this worker waits once the claim is over (see `push.rs`).
        let mut claiming = match self.inner.handoffs.claim_begins(&worker.id, &worker.queue, worker.job, max) {
            Begun::Handed(tasks) => return Ok(Claimed { tasks, next_due: None }),
            Begun::Query(claiming) => claiming,
        };
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
        let mut unreadable: Vec<(i64, Error)> = Vec::new();
        let mut unnamed = None;
        for row in rows.into_iter().map(Stored) {
            match read_task(NAME, &row) {
                Ok(task) => tasks.push(task),
                // The row is buried by its stored id, whatever made it
                // unreadable (a negative id included).
                Err((_, error)) => match row.int("id") {
                    Ok(Some(id)) => unreadable.push((id, error)),
                    // An INTEGER PRIMARY KEY always reads; should it not,
                    // that row can only be reported (it waits for this
                    // worker's release or rescue).
                    _ => unnamed = Some(error),
                },
            }
        }
        let claimed = || tasks.iter().map(|t| raw_id(t.id)).chain(unreadable.iter().map(|(id, _)| *id)).collect();
        if !unreadable.is_empty()
            && let Err(error) = self.bury(worker, &unreadable, now).await
        {
            // Nothing of the claim is left `running` for a worker that will
            // not run it: it is put back as it was, and the worker retries.
            self.put_back(worker, claimed()).await;
            return Err(error);
        }
        if let Some(error) = unnamed {
            self.put_back(worker, tasks.iter().map(|t| raw_id(t.id)).collect()).await;
            return Err(error);
        }
        // RETURNING comes in no particular order.
        tasks.sort_unstable_by(|a, b| b.priority.cmp(&a.priority).then(a.run_at.cmp(&b.run_at)).then(a.id.cmp(&b.id)));

        let next_due = if tasks.is_empty() {
            claiming.found_nothing();
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

    /// Sends claimed tasks whose rows cannot be read (by stored id) to
    /// `dead` with the reason, in one transaction; a workflow step's run
    /// fails with it.
    async fn bury(&self, worker: &WorkerRegistration, tasks: &[(i64, Error)], now: Timestamp) -> Result<(), Error> {
        let operation = || format!("send {} unreadable task(s) claimed by worker `{}` to dead", tasks.len(), worker.id);
        let mut conn = self.inner.writer.acquire().await.map_err(query_error(operation()))?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(query_error(operation()))?;
        let mut ended = Vec::new();
        for (id, error) in tasks {
            tracing::warn!(task = %id, %error, "a claimed task's stored row cannot be read; it goes dead");
            let row = sqlx::query(sql::MARK_DEAD)
                .bind(*id)
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

    /// Puts claimed tasks back as they were before the claim; should that
    /// fail, remembers them, to be put back before the worker's next claim.
    async fn put_back(&self, worker: &WorkerRegistration, ids: Vec<i64>) {
        if ids.is_empty() {
            return;
        }
        if let Err(error) = self.unclaim(worker, &ids).await {
            tracing::warn!(
                worker = %worker.id,
                tasks = ?ids,
                %error,
                "could not put back a claim that failed; it is put back before the worker's next claim"
            );
            self.inner.put_backs.add(&worker.id, ids);
        }
    }

    /// Puts back the claims of `worker` that could not be put back before,
    /// and what hand-offs to it may have left `running` for it.
    async fn put_back_earlier_claims(&self, worker: &WorkerRegistration) -> Result<(), Error> {
        let mut pending = self.inner.put_backs.take(&worker.id).into_iter();
        while let Some(back) = pending.next() {
            let done = match &back {
                PutBack::Claimed(ids) => self.unclaim(worker, ids).await,
                PutBack::Handed(token) => self.unclaim_handed(&worker.id, &worker.queue, *token).await,
            };
            if let Err(error) = done {
                let mut all = self.inner.put_backs.lock();
                all.push((Arc::clone(&worker.id), back));
                all.extend(pending.map(|back| (Arc::clone(&worker.id), back)));
                return Err(error);
            }
        }
        Ok(())
    }

    /// Puts back the task written `running` for `worker` under hand-off
    /// `token` (`sql/unclaim_handed.sql`), if there is one, and wakes its
    /// queue's workers.
    pub(crate) async fn unclaim_handed(&self, worker: &str, queue: &str, token: i64) -> Result<(), Error> {
        let done = sqlx::query(sql::UNCLAIM_HANDED)
            .bind(worker)
            .bind(token)
            .execute(&self.inner.writer)
            .await
            .map_err(query_error(format!("put back a task enqueued for worker `{worker}` that it did not get")))?;
        if done.rows_affected() > 0 {
            self.inner.notifier.notify(queue);
        }
        Ok(())
    }

    /// Puts claimed tasks back as they were before the claim (those still
    /// `running` for this worker), without using an attempt.
    async fn unclaim(&self, worker: &WorkerRegistration, ids: &[i64]) -> Result<(), Error> {
        let json = json_ints(ids.iter().copied());
        sqlx::query(sql::UNCLAIM)
            .bind(&json)
            .bind(&*worker.id)
            .execute(&self.inner.writer)
            .await
            .map_err(query_error(format!("put back tasks {json} claimed by worker `{}`", worker.id)))?;
        self.inner.notifier.notify(&worker.queue);
        Ok(())
    }
}
