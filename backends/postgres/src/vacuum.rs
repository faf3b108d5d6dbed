//! Vacuuming the tasks table as work goes through it.
//!
//! Every claim leaves a dead entry at the head of the claim index, and only
//! VACUUM removes it: until then each claim walks past all of them. On a
//! busy queue that is hundreds of thousands of entries per minute, more than
//! autovacuum (one look per table per `autovacuum_naptime`, a minute by
//! default, or never where it is off) keeps up with, and a drain of a
//! million tasks slows tenfold. So the backend runs `VACUUM (SKIP_LOCKED)`
//! on the tasks table itself after every so many finished tasks, one at a
//! time per backend value; processes that find one already running skip
//! theirs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use sqlx::PgPool;

/// Default for [`PostgresBuilder::vacuum_every`](crate::PostgresBuilder::vacuum_every).
pub(crate) const DEFAULT_EVERY: u64 = 50_000;

/// Counts state changes and starts a VACUUM when enough have piled up.
#[derive(Debug, Default)]
pub(crate) struct Vacuum {
    changed: AtomicU64,
    running: AtomicBool,
}

impl Vacuum {
    /// Records `n` finished tasks; past `every` since the last VACUUM (0:
    /// never), starts one in the background.
    pub(crate) fn changed(self: &std::sync::Arc<Self>, n: u64, every: u64, pool: &PgPool, sql: &str) {
        if every == 0 || self.changed.fetch_add(n, Ordering::Relaxed) + n < every {
            return;
        }
        if self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        self.changed.store(0, Ordering::Relaxed);
        let (this, pool, sql) = (std::sync::Arc::clone(self), pool.clone(), sql.to_owned());
        tokio::spawn(async move {
            if let Err(error) = sqlx::query(&sql).execute(&pool).await {
                tracing::warn!(%error, "postgres: could not vacuum the tasks table");
            }
            this.running.store(false, Ordering::Release);
        });
    }
}
