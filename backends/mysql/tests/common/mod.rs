//! Shared by the MySQL tests: the server URL, fresh table name prefixes, and
//! dropping their tables. Every test that needs the server is gated by the
//! crate's build script (`#[cfg_attr(errand_skip, ignore = …)]`): without
//! `ERRAND_MYSQL_URL` it is reported as ignored.

#![allow(dead_code, unreachable_pub)]

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use errand_mysql::sqlx::{self, Connection, MySqlConnection};
use errand_mysql::{MysqlBackend, MysqlBuilder};
use errand_runtime::Codec;

/// Test tables older than this are leftovers of crashed runs: dropped.
const STALE_SECS: u64 = 3600;
/// The tables of one prefix (and the side table of the load test).
pub const TABLES: [&str; 10] = [
    "tasks",
    "unique_keys",
    "workers",
    "served_jobs",
    "runs",
    "run_steps",
    "paused_queues",
    "schedules",
    "migrations",
    "record_runs",
];

/// `ERRAND_MYSQL_URL` (the tests that call this are ignored without it).
pub fn url() -> String {
    errand_runtime::testing::service_url("ERRAND_MYSQL_URL")
}

/// A new prefix, `et_<unix seconds>_<random>_`.
pub fn fresh_prefix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    format!("et_{secs}_{:08x}_", h.finish() & 0xffff_ffff)
}

/// A connection of its own, for set-up and clean-up.
pub async fn connection(url: &str) -> MySqlConnection {
    MySqlConnection::connect(url).await.unwrap_or_else(|e| panic!("cannot connect to the test server: {e}"))
}

/// Drops the tables of `prefix`.
pub async fn drop_tables(conn: &mut MySqlConnection, prefix: &str) {
    let names: Vec<String> = TABLES.iter().map(|t| format!("`{prefix}{t}`")).collect();
    let sql = format!("DROP TABLE IF EXISTS {}", names.join(", "));
    let _ = sqlx::query(&sql).execute(conn).await;
}

/// Drops test tables left behind by runs more than an hour old.
pub async fn drop_stale_tables(conn: &mut MySqlConnection) {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
         WHERE table_schema = DATABASE() AND table_name LIKE 'et\\_%\\_tasks'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap_or_default();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    for name in names {
        let created = name.split('_').nth(1).and_then(|s| s.parse::<u64>().ok());
        if created.is_some_and(|c| c + STALE_SECS < now) {
            let prefix = name.trim_end_matches("tasks").to_owned();
            drop_tables(conn, &prefix).await;
        }
    }
}

/// A migrated backend with a fresh prefix, with the settings `configure`
/// makes (the prefix is set afterwards).
pub async fn backend_with<C: Codec>(
    url: &str,
    configure: impl FnOnce(MysqlBuilder) -> MysqlBuilder<C>,
) -> MysqlBackend<C> {
    backend_in(url, &fresh_prefix(), configure).await
}

/// A migrated backend on `prefix`, with the settings `configure` makes.
pub async fn backend_in<C: Codec>(
    url: &str,
    prefix: &str,
    configure: impl FnOnce(MysqlBuilder) -> MysqlBuilder<C>,
) -> MysqlBackend<C> {
    drop_stale_tables(&mut connection(url).await).await;
    configure(MysqlBackend::builder()).namespace(prefix).connect(url).await.unwrap_or_else(|e| panic!("{e}"))
}

/// Drops a prefix's tables when it goes out of scope, passed or panicked:
/// on a thread with a runtime of its own, since the test's is shutting down.
#[derive(Debug)]
pub struct DropTables {
    pub url: String,
    pub prefix: String,
}

impl DropTables {
    /// A guard for `backend`'s tables.
    pub fn of<C: Codec>(url: &str, backend: &MysqlBackend<C>) -> Self {
        Self { url: url.to_owned(), prefix: backend.namespace().to_owned() }
    }
}

impl Drop for DropTables {
    fn drop(&mut self) {
        let (url, prefix) = (self.url.clone(), self.prefix.clone());
        errand_runtime::testing::clean_up_blocking(Duration::from_secs(30), move || async move {
            if let Ok(mut conn) = MySqlConnection::connect(&url).await {
                drop_tables(&mut conn, &prefix).await;
            }
        });
    }
}
