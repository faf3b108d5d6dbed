//! Retention: deleting `done` tasks and finished workflow runs once
//! [`Tuning::retention`](errand_runtime::Tuning::retention) has passed since
//! they finished, in bounded batches, apart from rescue and acks.
//!
//! Workers call [`Backend::purge_expired`](errand_runtime::Backend::purge_expired)
//! about every 10 s each; a process runs one pass at a time and at most one
//! every [`period`] ([`Pacing`], shared by the backend's clones), and the
//! other calls return at once. A pass deletes tasks in statements of
//! [`BATCH`] rows, each its own short write transaction so that claims and
//! acks of every process get the write lock in between, and stops after
//! [`STATEMENTS`] of them (the next pass goes on); then it deletes up to
//! [`BATCH`] finished runs with their steps. Every statement finds its rows
//! through a partial index of finished rows (`errand_tasks_finished`,
//! `errand_runs_finished`): `dead` and `cancelled` tasks, which are kept,
//! and unfinished work are never read.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use errand_runtime::backend::Every;
use errand_runtime::{Codec, Error, Timestamp};
use sqlx::Connection;

use crate::rows::{json_ints, query_error};
use crate::{SqliteBackend, sql};

/// Rows one delete statement removes at most.
pub(crate) const BATCH: i64 = 5_000;
/// Task delete statements one pass runs at most.
pub(crate) const STATEMENTS: usize = 4;
/// A process runs at most one pass this often.
const EVERY: Duration = Duration::from_secs(1);

/// How often a process runs a pass at most: every second, or more often
/// with a retention shorter than 4 s (a quarter of it), so finished work is
/// not kept much beyond the retention.
pub(crate) fn period(retention: Duration) -> Duration {
    EVERY.min(retention / 4)
}

/// The pacing of passes, shared by a backend's clones: one at a time, at
/// most one per [`period`].
#[derive(Debug)]
pub(crate) struct Pacing {
    every: Every,
    busy: AtomicBool,
}

impl Pacing {
    pub(crate) fn new(retention: Duration) -> Self {
        Self { every: Every::new(period(retention)), busy: AtomicBool::new(false) }
    }

    /// A pass, if none is running and one is due at `now`.
    fn start(&self, now: Timestamp) -> Option<Pass<'_>> {
        if self.busy.swap(true, Ordering::AcqRel) {
            return None;
        }
        let pass = Pass(&self.busy);
        self.every.due(now).then_some(pass)
    }
}

/// A running pass; another may start once it is dropped.
struct Pass<'a>(&'a AtomicBool);

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl<C: Codec> SqliteBackend<C> {
    /// One pass of retention, if one is due in this process; returns how
    /// many tasks it deleted.
    pub(crate) async fn purge_expired(&self) -> Result<u64, Error> {
        let now = self.tuning.clock.now();
        let Some(_pass) = self.inner.retention.start(now) else { return Ok(0) };
        // Stored times come from the tuning's clock: so does the cutoff.
        let cutoff = now.sub(self.tuning.retention).as_millis();
        if cutoff <= 0 {
            // Nothing finished before 1970: a retention this long keeps all.
            return Ok(0);
        }
        let mut deleted = 0;
        for _ in 0..STATEMENTS {
            let n = sqlx::query(sql::PURGE_TASKS)
                .bind(cutoff)
                .bind(BATCH)
                .execute(&self.inner.writer)
                .await
                .map_err(query_error("delete done tasks past their retention"))?
                .rows_affected();
            deleted += n;
            if n < BATCH as u64 {
                break;
            }
        }
        self.purge_runs(cutoff).await?;
        Ok(deleted)
    }

    /// Deletes up to [`BATCH`] runs that finished before `cutoff` (ms), with
    /// their steps, in one transaction.
    async fn purge_runs(&self, cutoff: i64) -> Result<(), Error> {
        let operation = || "delete finished workflow runs past their retention".to_owned();
        let mut conn = self.inner.writer.acquire().await.map_err(query_error(operation()))?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(query_error(operation()))?;
        let runs: Vec<i64> = sqlx::query_scalar(sql::PURGE_RUNS)
            .bind(cutoff)
            .bind(BATCH)
            .fetch_all(&mut *tx)
            .await
            .map_err(query_error(operation()))?;
        if !runs.is_empty() {
            sqlx::query(sql::PURGE_RUN_STEPS)
                .bind(json_ints(runs))
                .execute(&mut *tx)
                .await
                .map_err(query_error(operation()))?;
        }
        tx.commit().await.map_err(query_error(operation()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pass_at_a_time_and_one_per_period() {
        let pacing = Pacing::new(Duration::from_secs(3600));
        let first = pacing.start(Timestamp(10_000));
        assert!(first.is_some());
        assert!(pacing.start(Timestamp(20_000)).is_none(), "one pass at a time, however late");
        drop(first);
        assert!(pacing.start(Timestamp(20_000)).is_some());
        assert!(pacing.start(Timestamp(20_500)).is_none(), "at most one per second");
        assert!(pacing.start(Timestamp(21_000)).is_some());
    }

    #[test]
    fn passes_are_paced_by_the_retention() {
        assert_eq!(period(Duration::from_secs(24 * 3600)), EVERY);
        assert_eq!(period(Duration::MAX), EVERY);
        assert_eq!(period(Duration::from_millis(300)), Duration::from_millis(75));
        assert_eq!(period(Duration::ZERO), Duration::ZERO);
    }
}
