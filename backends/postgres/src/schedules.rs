//! `impl Schedules for PostgresBackend`: the latest tick of each cron
//! schedule, in the `schedules` table (migration 6). Recording is one upsert
//! that keeps the later tick (`record_tick.sql`), so processes racing to
//! record never move it back; the unique keys of the ticks' tasks (see
//! `push_unique.sql`) are what make each tick fire once.

use errand_runtime::capability::Schedules;
use errand_runtime::{Codec, Error, Timestamp};

use crate::PostgresBackend;
use crate::rows::query_error;

impl<C: Codec> Schedules for PostgresBackend<C> {
    async fn last_tick(&self, schedule: &str) -> Result<Option<Timestamp>, Error> {
        let tick: Option<i64> = sqlx::query_scalar(&self.inner.queries.last_tick)
            .bind(schedule)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(query_error(format!(
                "read the last tick of schedule `{schedule}` in schema `{}`",
                self.inner.schema
            )))?;
        Ok(tick.map(Timestamp))
    }

    async fn record_tick(&self, schedule: &str, tick: Timestamp) -> Result<(), Error> {
        sqlx::query(&self.inner.queries.record_tick)
            .bind(schedule)
            .bind(tick.as_millis())
            .execute(&self.inner.pool)
            .await
            .map_err(query_error(format!(
                "record tick {} of schedule `{schedule}` in schema `{}`",
                tick.as_millis(),
                self.inner.schema
            )))?;
        Ok(())
    }
}
