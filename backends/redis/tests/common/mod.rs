//! Shared helpers of the Redis tests: a backend with a random key prefix
//! whose keys are deleted when the test ends.
//!
//! The tests that use a server are gated by the build script: without
//! `ERRAND_REDIS_URL` they are reported as ignored.

#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use errand_redis::{RedisBackend, RedisBuilder};
use errand_runtime::Codec;

/// The test server's URL (the build script ignores the tests that call
/// this when it is unset).
pub fn url() -> String {
    errand_runtime::testing::service_url("ERRAND_REDIS_URL")
}

/// A prefix no other test uses.
pub fn random_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("errand-test:{}:{nanos:x}:{n}:", std::process::id())
}

/// A builder with a random namespace.
pub fn builder() -> RedisBuilder {
    RedisBackend::builder().namespace(random_prefix())
}

/// `prefix` as a `SCAN MATCH` pattern of every key that starts with it.
fn pattern(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('*');
    pattern
}

/// Deletes every key that starts with `prefix` (`SCAN` + `UNLINK`, never a
/// flush: the server is shared) and returns how many it deleted.
///
/// # Errors
///
/// When Redis fails; keys deleted before the failure stay deleted.
pub async fn delete_keys(url: &str, prefix: &str) -> redis::RedisResult<u64> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let pattern = pattern(prefix);
    let mut cursor: u64 = 0;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            let n: u64 = redis::cmd("UNLINK").arg(&keys).query_async(&mut conn).await?;
            deleted += n;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

/// Deletes a backend's keys when dropped (on a thread with a runtime of its
/// own: the test's may be shutting down).
#[derive(Debug)]
pub struct Cleanup {
    pub url: String,
    pub prefix: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (url, prefix) = (self.url.clone(), self.prefix.clone());
        errand_runtime::testing::clean_up_blocking(Duration::from_secs(10), move || async move {
            let _ = delete_keys(&url, &prefix).await;
        });
    }
}

/// A backend built by `builder` (with a random namespace, see [`builder`])
/// with codec `C`, and the guard that deletes its keys.
pub async fn backend<C: Codec>(builder: RedisBuilder) -> (RedisBackend<C>, Cleanup) {
    let url = url();
    let backend = match builder.codec::<C>().connect(&url).await {
        Ok(backend) => backend,
        Err(error) => panic!("cannot connect to the test Redis at {url}: {error}"),
    };
    let cleanup = Cleanup { url, prefix: backend.namespace().to_owned() };
    (backend, cleanup)
}

/// A plain connection to the test server, for reading and writing stored
/// data behind a backend's back.
pub async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    match redis::Client::open(url) {
        Ok(client) => match client.get_multiplexed_async_connection().await {
            Ok(conn) => conn,
            Err(error) => panic!("connecting to {url}: {error}"),
        },
        Err(error) => panic!("opening {url}: {error}"),
    }
}

/// The seq of a task id: its field in the queue's hashes.
pub fn seq(id: errand_runtime::TaskId) -> u64 {
    id.0 & ((1 << 40) - 1)
}

/// The key `name` of `queue` under `namespace`.
pub fn key(namespace: &str, queue: &str, name: &str) -> String {
    format!("{namespace}{{{queue}}}:{name}")
}

/// Field `field` of hash `key` (empty when missing).
pub async fn hget(conn: &mut redis::aio::MultiplexedConnection, key: &str, field: u64) -> Vec<u8> {
    let value: Option<Vec<u8>> = redis::cmd("HGET")
        .arg(key)
        .arg(field)
        .query_async(conn)
        .await
        .unwrap_or_else(|e| panic!("HGET {key} {field}: {e}"));
    value.unwrap_or_default()
}

/// Sets field `field` of hash `key`.
pub async fn hset(conn: &mut redis::aio::MultiplexedConnection, key: &str, field: u64, value: &[u8]) {
    let _: i64 = redis::cmd("HSET")
        .arg(key)
        .arg(field)
        .arg(value)
        .query_async(conn)
        .await
        .unwrap_or_else(|e| panic!("HSET {key} {field}: {e}"));
}

/// Checks that the stored counts of `queue` are the states its tasks are
/// in: every task of the record hash, by the letter of its state value (no
/// value: pending). Panics with both otherwise; returns the counts.
pub async fn counts_match_states(
    conn: &mut redis::aio::MultiplexedConnection,
    namespace: &str,
    queue: &str,
) -> std::collections::BTreeMap<String, i64> {
    use std::collections::{BTreeMap, HashMap};
    let tasks: Vec<String> = redis::cmd("HKEYS")
        .arg(key(namespace, queue, "t"))
        .query_async(conn)
        .await
        .unwrap_or_else(|e| panic!("HKEYS: {e}"));
    let states: HashMap<String, Vec<u8>> = redis::cmd("HGETALL")
        .arg(key(namespace, queue, "s"))
        .query_async(conn)
        .await
        .unwrap_or_else(|e| panic!("HGETALL: {e}"));
    let mut actual: BTreeMap<String, i64> = BTreeMap::new();
    for task in &tasks {
        let state = match states.get(task).and_then(|v| v.first()) {
            None => "pending",
            Some(b'p') => "pending",
            Some(b'r') => "running",
            Some(b'y') => "retry",
            Some(b'd') => "done",
            Some(b'x') => "dead",
            Some(b'c') => "cancelled",
            Some(other) => panic!("task {task} has the state letter {:?}", char::from(*other)),
        };
        *actual.entry(state.to_owned()).or_default() += 1;
    }
    let stored: HashMap<String, i64> = redis::cmd("HGETALL")
        .arg(key(namespace, queue, "n"))
        .query_async(conn)
        .await
        .unwrap_or_else(|e| panic!("HGETALL counts: {e}"));
    let stored: BTreeMap<String, i64> = stored.into_iter().filter(|(_, n)| *n != 0).collect();
    assert_eq!(stored, actual, "the stored counts of queue `{queue}` (left) drifted from its tasks' states (right)");
    actual
}
