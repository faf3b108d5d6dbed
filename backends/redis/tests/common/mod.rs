//! Shared helpers of the Redis tests: a backend with a random key prefix
//! whose keys are deleted when the test ends.

#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use errand_redis::{RedisBackend, RedisBuilder};
use errand_runtime::Codec;

/// The test server's URL, or `None` (after printing that the test is skipped).
pub fn url() -> Option<String> {
    errand_runtime::testing::service_url("ERRAND_REDIS_URL")
}

/// A prefix no other test uses.
pub fn random_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("errand-test:{}:{nanos:x}:{n}:", std::process::id())
}

/// A builder with a random prefix.
pub fn builder() -> RedisBuilder {
    RedisBackend::builder().prefix(random_prefix())
}

/// Deletes every key under `prefix` (SCAN + UNLINK).
pub async fn delete_keys(url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(url) else { return };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else { return };
    let pattern = format!("{}*", prefix.replace('*', "\\*").replace('?', "\\?").replace('[', "\\["));
    let mut cursor: u64 = 0;
    loop {
        let Ok((next, keys)): Result<(u64, Vec<String>), _> = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
        else {
            return;
        };
        if !keys.is_empty() {
            let _: Result<i64, _> = redis::cmd("UNLINK").arg(&keys).query_async(&mut conn).await;
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}

/// Deletes a backend's keys when dropped (in a spawned task, or a fresh
/// runtime when none is running).
#[derive(Debug)]
pub struct Cleanup {
    pub url: String,
    pub prefix: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (url, prefix) = (self.url.clone(), self.prefix.clone());
        errand_runtime::testing::clean_up_blocking(Duration::from_secs(10), move || async move {
            delete_keys(&url, &prefix).await;
        });
    }
}

/// A backend with a random prefix, and the guard that deletes its keys.
pub async fn backend<C: Codec>(builder: RedisBuilder) -> (RedisBackend<C>, Cleanup) {
    let url = url().unwrap_or_default();
    let backend = match builder.codec::<C>().connect(&url).await {
        Ok(backend) => backend,
        Err(error) => panic!("cannot connect to the test Redis at {url}: {error}"),
    };
    let cleanup = Cleanup { url, prefix: backend.prefix().to_owned() };
    (backend, cleanup)
}
