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
