//! [`Schedules`]: the last tick of each schedule, in the hash
//! `P{~}:schedules` (schedule name → the tick in ms, a decimal integer).
//! Recording keeps the later tick atomically (`scripts/tick.lua`), so
//! processes racing to record never move it back.

use errand_runtime::backend::stored::bad_data;
use errand_runtime::capability::Schedules;
use errand_runtime::{Codec, Error, Timestamp};
use redis::Value;

use crate::RedisBackend;
use crate::reply::{self, NAME, failed, int, unexpected};

impl<C: Codec> Schedules for RedisBackend<C> {
    async fn last_tick(&self, schedule: &str) -> Result<Option<Timestamp>, Error> {
        let value: Value = redis::cmd("HGET")
            .arg(self.inner.keys.schedules())
            .arg(schedule)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| failed(format!("read the last tick of schedule `{schedule}`"), e))?;
        if value == Value::Nil {
            return Ok(None);
        }
        match int(&value) {
            Some(ms) => Ok(Some(Timestamp(ms))),
            None => {
                let shown = reply::string(value).unwrap_or_default();
                let shown: String = shown.chars().take(40).collect();
                Err(bad_data(
                    NAME,
                    &format!("the last tick of schedule `{schedule}`"),
                    format!("`{shown}` is not a time in ms"),
                ))
            }
        }
    }

    async fn record_tick(&self, schedule: &str, tick: Timestamp) -> Result<(), Error> {
        let lua = &self.inner.scripts.tick;
        let mut cmd = lua.call(&[&self.inner.keys.schedules()]);
        cmd.arg(schedule).arg(tick.as_millis());
        let what = format!("record tick {} of schedule `{schedule}`", tick.as_millis());
        let value = lua.run(&mut self.conn(), &cmd).await.map_err(|e| failed(what.as_str(), e))?;
        match int(&value) {
            Some(0 | 1) => Ok(()),
            _ => Err(unexpected(what, &value)),
        }
    }
}
