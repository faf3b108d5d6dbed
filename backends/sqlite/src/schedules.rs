//! `impl Schedules for SqliteBackend`: the last tick of each schedule, in
//! `errand_schedules`, moved only forward by one upsert.

use errand_runtime::backend::stored::StoredRow;
use errand_runtime::capability::Schedules;
use errand_runtime::{Codec, Error, Timestamp};

use crate::rows::{Stored, bad_data, query_error};
use crate::{SqliteBackend, sql};

impl<C: Codec> Schedules for SqliteBackend<C> {
    async fn last_tick(&self, schedule: &str) -> Result<Option<Timestamp>, Error> {
        let row = sqlx::query(sql::LAST_TICK)
            .bind(schedule)
            .fetch_optional(&self.inner.reader)
            .await
            .map_err(query_error(format!("read the last tick of schedule `{schedule}`")))?;
        let Some(row) = row.map(Stored) else { return Ok(None) };
        let what = || format!("schedule `{schedule}`");
        match row.int("last_tick") {
            Ok(Some(tick)) => Ok(Some(Timestamp(tick))),
            Ok(None) => Err(bad_data(&what(), "column `last_tick` is NULL")),
            Err(e) => Err(bad_data(&what(), format!("column `last_tick`: {e}"))),
        }
    }

    async fn record_tick(&self, schedule: &str, tick: Timestamp) -> Result<(), Error> {
        sqlx::query(sql::RECORD_TICK)
            .bind(schedule)
            .bind(tick.as_millis())
            .execute(&self.inner.writer)
            .await
            .map_err(query_error(format!("record tick {} of schedule `{schedule}`", tick.as_millis())))?;
        Ok(())
    }
}
