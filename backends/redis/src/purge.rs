//! Retention: deleting the `done` tasks whose retention has passed, apart
//! from acks and rescue, paced so that repeated calls are cheap.
//!
//! Each ack call records when the tasks it finished expire (an entry of the
//! queue's `x` sorted set); [`purge_expired`](errand_runtime::Backend::purge_expired)
//! runs one bounded purge script per queue, pipelined, at most once per
//! [`purge_period`] for a backend handle and its clones — at once again when
//! the last pass left expired tasks behind. Finished workflow runs need no
//! purge: their hashes expire by themselves (`PEXPIRE` by the retention when
//! they finish); the same script only takes the expired ones out of the
//! queue's run index (`wl`, read by `run_ids`), from the `wx` entries their
//! finish wrote.

use std::sync::atomic::Ordering;
use std::time::Duration;

use errand_runtime::{Codec, Error};
use redis::{Cmd, Value};

use crate::RedisBackend;
use crate::pipeline::run_many;
use crate::reply::{count, unexpected};

/// The longest pause between two purges of one backend handle.
const PURGE_EVERY: Duration = Duration::from_secs(10);
/// Tasks deleted per queue and purge call, about (an expiry entry holds the
/// tasks of one ack call, up to 512).
const PURGE_BATCH: usize = 5_000;

/// How often a handle with `retention` purges at most: every 10 s, or a
/// quarter of a shorter retention, so that a done task outlives its
/// retention by at most that much (plus the runtime's own pace).
pub(crate) fn purge_period(retention: Duration) -> Duration {
    PURGE_EVERY.min(retention / 4)
}

impl<C: Codec> RedisBackend<C> {
    /// [`Backend::purge_expired`](errand_runtime::Backend::purge_expired).
    pub(crate) async fn purge(&self) -> Result<u64, Error> {
        let more = self.inner.purge_more.swap(false, Ordering::AcqRel);
        if !more && !self.inner.purge_every.due(self.now()) {
            return Ok(0);
        }
        let result = self.purge_queues().await;
        if result.is_err() {
            // Try again on the next call.
            self.inner.purge_more.store(true, Ordering::Release);
        }
        result
    }

    async fn purge_queues(&self) -> Result<u64, Error> {
        let queues = self.all_queues().await?;
        if queues.is_empty() {
            return Ok(0);
        }
        let lua = &self.inner.scripts.purge;
        let now = self.now().as_millis();
        let calls: Vec<Cmd> = queues
            .iter()
            .map(|(queue, _)| {
                let base = self.inner.keys.base(queue);
                let mut cmd =
                    lua.call(&[&format!("{base}x"), &format!("{base}n"), &format!("{base}wx"), &format!("{base}wl")]);
                cmd.arg(&base).arg(now).arg(PURGE_BATCH);
                cmd
            })
            .collect();
        let what = "delete the done tasks past their retention";
        let mut deleted = 0;
        for ((queue, _), value) in queues.iter().zip(run_many(&self.inner.conn, lua, calls, what).await?) {
            let what = format!("{what} on queue `{queue}`");
            let Value::Array(items) = &value else { return Err(unexpected(what, &value)) };
            let [n, more] = items.as_slice() else { return Err(unexpected(what, &value)) };
            deleted += count(n, &what)?;
            if count(more, &what)? > 0 {
                self.inner.purge_more.store(true, Ordering::Release);
            }
        }
        Ok(deleted)
    }
}
