//! `impl Schedules for MysqlBackend`: each schedule's last tick in
//! `<prefix>schedules`, keyed by the SHA-256 of its name (`last_tick.sql`),
//! recorded with an upsert that keeps the greater tick (`record_tick.sql`),
//! so processes racing to record never move it back. The ticks themselves
//! are enqueued with unique keys (`UniqueKeys`), so each fires once.

use errand_runtime::capability::Schedules;
use errand_runtime::{Codec, Error, Timestamp};

use crate::MysqlBackend;
use crate::rows::{DEADLOCK_RETRIES, is_deadlock, query_error};

impl<C: Codec> Schedules for MysqlBackend<C> {
    async fn last_tick(&self, schedule: &str) -> Result<Option<Timestamp>, Error> {
        let inner = &*self.inner;
        let tick: Option<i64> = sqlx::query_scalar(&inner.queries.last_tick)
            .bind(schedule)
            .fetch_optional(&inner.pool)
            .await
            .map_err(query_error(format!("read the last tick of schedule `{schedule}` in `{}`", inner.location)))?;
        Ok(tick.map(Timestamp))
    }

    async fn record_tick(&self, schedule: &str, tick: Timestamp) -> Result<(), Error> {
        let inner = &*self.inner;
        let mut tries = 0;
        loop {
            let done = sqlx::query(&inner.queries.record_tick)
                .bind(schedule)
                .bind(schedule)
                .bind(tick.as_millis())
                .execute(&inner.pool)
                .await;
            match done {
                Ok(_) => return Ok(()),
                // Processes recording the same schedule's first tick at once
                // may deadlock on its new row; the one rolled back runs again.
                Err(error) if is_deadlock(&error) && tries < DEADLOCK_RETRIES => tries += 1,
                Err(error) => {
                    return Err(query_error(format!(
                        "record tick {} of schedule `{schedule}` in `{}`",
                        tick.as_millis(),
                        inner.location
                    ))(error));
                }
            }
        }
    }
}
