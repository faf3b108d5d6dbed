//! Acknowledging finished runs: one transaction with at most one statement
//! per outcome kind. The `done` and `dead` acks of a workflow step worker
//! run as one script with the reads of their runs ([`sql::STEP_ACK`]), which
//! returns the steps they really ended; the runs then advance in the same
//! transaction (see [`crate::workflow`]): four round trips to the
//! connection's thread with `BEGIN` and `COMMIT`, however many steps and
//! runs the batch holds.

use std::collections::HashMap;

use errand_runtime::backend::stored::StoredRow;
use errand_runtime::backend::{Ack, Outcome, WorkerRegistration};
use errand_runtime::workflow::plan::StepEnd;
use errand_runtime::{Codec, Error, Timestamp};
use sqlx::pool::PoolConnection;
use sqlx::{Connection, Sqlite, SqliteConnection};

use crate::encode::JsonRows;
use crate::rows::{Stored, bad_data, query_error, wrong_reply};
use crate::workflow::{self, EndedStep, Finish, RunRows};
use crate::{SqliteBackend, sql};

/// The outcome kinds, one statement each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Done,
    Retry,
    Dead,
    Snooze,
}

impl Kind {
    fn statement(self) -> &'static str {
        match self {
            Kind::Done => sql::ACK_DONE,
            Kind::Dead => sql::ACK_DEAD,
            Kind::Retry => sql::ACK_RETRY,
            Kind::Snooze => sql::ACK_SNOOZE,
        }
    }

    /// Whether the outcome ends a task (and, for a step, its step).
    fn ends_step(self) -> bool {
        matches!(self, Kind::Done | Kind::Dead)
    }
}

impl<C: Codec> SqliteBackend<C> {
    pub(crate) async fn ack(&self, worker: &WorkerRegistration, acks: &[Ack]) -> Result<(), Error> {
        if acks.is_empty() {
            return Ok(());
        }
        let steps = worker.workflow_steps;
        let mut done = JsonRows::with_capacity(acks.len() * 24);
        let mut retry = JsonRows::with_capacity(0);
        let mut dead = JsonRows::with_capacity(0);
        let mut snooze = JsonRows::with_capacity(0);
        // A step's output goes to the planner (and is stored with its run),
        // not into the task's row.
        let mut outputs: HashMap<i64, &[u8]> = HashMap::new();
        for ack in acks {
            // An id beyond i64 was never handed out by this backend.
            let Ok(id) = i64::try_from(ack.id.0) else { continue };
            let _ = match &ack.outcome {
                Outcome::Done { result } if steps => {
                    outputs.insert(id, result);
                    done.row().int(id)
                }
                Outcome::Done { result } => done.row().int(id).hex(result),
                Outcome::Retry { at, error } => retry.row().int(id).int(at.as_millis()).str(error),
                Outcome::Dead { error } => dead.row().int(id).str(error),
                Outcome::Snooze { at } => snooze.row().int(id).int(at.as_millis()),
            };
        }
        let wake = !retry.is_empty() || !snooze.is_empty();
        // A step worker's `done` and `dead` acks go with the reads that advance
        // their runs (`sql::STEP_ACK`); everything else is one statement a kind.
        let step_ends = if steps && !(done.is_empty() && dead.is_empty()) {
            Some((
                std::mem::replace(&mut done, JsonRows::with_capacity(0)),
                std::mem::replace(&mut dead, JsonRows::with_capacity(0)),
            ))
        } else {
            None
        };
        let batches: Vec<(Kind, String)> =
            [(Kind::Done, done), (Kind::Retry, retry), (Kind::Dead, dead), (Kind::Snooze, snooze)]
                .into_iter()
                .filter(|(_, rows)| !rows.is_empty())
                .map(|(kind, rows)| (kind, rows.finish()))
                .collect();

        let operation = || format!("acknowledge {} task(s) of worker `{}`", acks.len(), worker.id);
        let now = self.tuning.clock.now();
        let mut conn = self.inner.writer.acquire().await.map_err(query_error(operation()))?;
        let (updated, woken) = match (batches.as_slice(), step_ends) {
            ([(kind, json)], None) => {
                let updated = ack_batch(&mut conn, *kind, json, now, &worker.id).await;
                (updated.map_err(query_error(operation()))?, Vec::new())
            }
            (_, None) => {
                let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(query_error(operation()))?;
                let mut updated = 0;
                for (kind, json) in &batches {
                    updated +=
                        ack_batch(&mut tx, *kind, json, now, &worker.id).await.map_err(query_error(operation()))?;
                }
                tx.commit().await.map_err(query_error(operation()))?;
                (updated, Vec::new())
            }
            (_, Some((done, dead))) => {
                // Two round trips: the acks with the runs' reads, which
                // begins the transaction, then the runs' writes with `COMMIT`.
                let begun = Begun::new(&mut conn);
                let rows = sqlx::query(sql::STEP_ACK)
                    .bind(done.finish())
                    .bind(dead.finish())
                    .bind(now.as_millis())
                    .bind(&*worker.id)
                    .fetch_all(&mut **begun.conn)
                    .await
                    .map_err(query_error(operation()))?;
                let mut updated = 0;
                let mut ended = Vec::new();
                let mut runs = RunRows::default();
                for row in rows.into_iter().map(Stored) {
                    let part = row.text("part").map_err(|e| bad_data(&operation(), format!("column `part`: {e}")))?;
                    let kind = match part.as_deref() {
                        Some("done") => Kind::Done,
                        Some("dead") => Kind::Dead,
                        _ => {
                            runs.push(row)?;
                            continue;
                        }
                    };
                    updated += 1;
                    if let Some(step) = EndedStep::of(&row, || step_end(kind, &row, &outputs))? {
                        ended.push(step);
                    }
                }
                // Retry and snooze acks of the same batch (rare), in the same transaction.
                for (kind, json) in &batches {
                    updated +=
                        ack_batch(begun.conn, *kind, json, now, &worker.id).await.map_err(query_error(operation()))?;
                }
                // The runs advance in ack order (RETURNING has none).
                if ended.len() > 1 {
                    let order: HashMap<u64, usize> = acks.iter().enumerate().map(|(i, a)| (a.id.0, i)).collect();
                    ended.sort_by_key(|e| u64::try_from(e.task).ok().and_then(|t| order.get(&t).copied()));
                }
                let woken = workflow::advance::<C>(begun.conn, ended, runs, now, Finish::Commit).await?;
                begun.ended();
                (updated, woken)
            }
        };
        if updated < acks.len() as u64 {
            // Some runs were cancelled (or rescued) meanwhile: the cancelled
            // ones are over now, so stop reporting them to this worker.
            sqlx::query(sql::FORGET_CANCELLED)
                .bind(&*worker.id)
                .execute(&mut *conn)
                .await
                .map_err(query_error(operation()))?;
        }
        drop(conn);
        self.wake_all(&woken);
        if updated < acks.len() as u64 {
            tracing::debug!(
                worker = %worker.id,
                ignored = acks.len() as u64 - updated,
                "ignored acks of tasks no longer running for this worker (rescued, released or cancelled)"
            );
        }
        if wake {
            self.inner.notifier.notify(&worker.queue);
        }
        Ok(())
    }
}

/// How the step of a row returned by `sql/step_ack_*_batch.sql` ended:
/// done with its output (from the acks, by task id), or failed with the
/// error stored.
fn step_end(kind: Kind, row: &Stored, outputs: &HashMap<i64, &[u8]>) -> Result<StepEnd, Error> {
    let what = || "a workflow step task just acknowledged".to_owned();
    match kind {
        Kind::Done => {
            let id = row.int("id").map_err(|e| bad_data(&what(), format!("column `id`: {e}")))?;
            match id.and_then(|id| outputs.get(&id)) {
                Some(output) => Ok(StepEnd::Done(output.to_vec())),
                None => Err(wrong_reply(
                    "acknowledge workflow step tasks",
                    format!("the store returned task {id:?} as done, which was not acked done"),
                )),
            }
        }
        _ => {
            let error = row.text("last_error").map_err(|e| bad_data(&what(), format!("column `last_error`: {e}")))?;
            Ok(StepEnd::Failed(error.unwrap_or_default()))
        }
    }
}

/// Runs one plain `sql/ack_*.sql` statement; returns how many tasks it updated.
async fn ack_batch(
    conn: &mut SqliteConnection,
    kind: Kind,
    json: &str,
    now: Timestamp,
    worker: &str,
) -> Result<u64, sqlx::Error> {
    let query = sqlx::query(kind.statement()).bind(json);
    // done and dead record when they finished; retry and snooze do not.
    let query = if kind.ends_step() { query.bind(now.as_millis()).bind(worker) } else { query.bind(worker) };
    Ok(query.execute(&mut *conn).await?.rows_affected())
}

/// The writer connection while a transaction that a script began (not
/// sqlx's, which would roll back on drop) is open: dropped before
/// [`Begun::ended`] (an error returned, the ack's future dropped), it marks
/// the connection to be closed rather than pooled, and closing it rolls the
/// transaction back. A connection is never pooled inside a transaction.
struct Begun<'a> {
    conn: &'a mut PoolConnection<Sqlite>,
    open: bool,
}

impl<'a> Begun<'a> {
    fn new(conn: &'a mut PoolConnection<Sqlite>) -> Self {
        Self { conn, open: true }
    }

    /// The transaction was committed (or rolled back) by the caller.
    fn ended(mut self) {
        self.open = false;
    }
}

impl Drop for Begun<'_> {
    fn drop(&mut self) {
        if self.open {
            tracing::debug!(
                "sqlite: closing the writer connection of an unfinished ack transaction, which rolls it back"
            );
            self.conn.close_on_drop();
        }
    }
}
