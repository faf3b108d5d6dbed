//! The queue registry: queue names and the numbers in their task ids.
//!
//! A queue is numbered the first time it is used (the `register` script);
//! the number is the high bits of its tasks' ids, so an id alone finds its
//! queue. Both directions are cached in the process: a queue's number never
//! changes under one namespace.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use errand_runtime::Error;
use redis::aio::ConnectionManager;

use crate::keys::Keys;
use crate::reply::{failed, int, unexpected};
use crate::scripts::Lua;

/// The registry of one namespace, with its in-process cache.
pub(crate) struct Queues {
    keys: Keys,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    by_name: HashMap<String, u32>,
    by_number: HashMap<u32, String>,
}

impl Queues {
    pub(crate) fn new(keys: Keys) -> Self {
        Self { keys, cache: Mutex::default() }
    }

    fn cache(&self) -> MutexGuard<'_, Cache> {
        // Every critical section is a plain map update: a panic inside one
        // cannot leave the maps in a state worth refusing to continue.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn remember(&self, queue: &str, n: u32) {
        let mut cache = self.cache();
        cache.by_name.insert(queue.to_owned(), n);
        cache.by_number.insert(n, queue.to_owned());
    }

    /// The number of `queue`, registering it on first use with `register`
    /// (the `register` script).
    pub(crate) async fn number(&self, conn: &mut ConnectionManager, register: &Lua, queue: &str) -> Result<u32, Error> {
        if let Some(n) = self.cache().by_name.get(queue) {
            return Ok(*n);
        }
        let keys = &self.keys;
        let mut cmd = register.call(&[&keys.queues(), &keys.queue_ids(), &keys.queue_seq()]);
        cmd.arg(queue);
        let what = || format!("register queue `{queue}`");
        let value = register.run(conn, &cmd).await.map_err(|e| failed(what(), e))?;
        let n = int(&value).and_then(|n| u32::try_from(n).ok()).ok_or_else(|| unexpected(what(), &value))?;
        self.remember(queue, n);
        Ok(n)
    }

    /// The name of queue number `n`, if it exists.
    pub(crate) async fn name(&self, conn: &mut ConnectionManager, n: u32) -> Result<Option<String>, Error> {
        if let Some(name) = self.cache().by_number.get(&n) {
            return Ok(Some(name.clone()));
        }
        let name: Option<String> = redis::cmd("HGET")
            .arg(self.keys.queue_ids())
            .arg(n)
            .query_async(conn)
            .await
            .map_err(|e| failed(format!("find queue number {n} in the queue registry"), e))?;
        if let Some(name) = &name {
            self.remember(name, n);
        }
        Ok(name)
    }

    /// Every registered queue, by name, with its number.
    pub(crate) async fn all(&self, conn: &mut ConnectionManager) -> Result<Vec<(String, u32)>, Error> {
        let map: HashMap<String, u32> = redis::cmd("HGETALL")
            .arg(self.keys.queues())
            .query_async(conn)
            .await
            .map_err(|e| failed("read the queue registry", e))?;
        let mut queues: Vec<(String, u32)> = map.into_iter().collect();
        queues.sort();
        for (name, n) in &queues {
            self.remember(name, *n);
        }
        Ok(queues)
    }
}
