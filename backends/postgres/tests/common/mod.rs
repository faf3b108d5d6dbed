//! Shared by the PostgreSQL tests: the server URL, fresh schemas, and
//! dropping them. Every test that needs the server is gated by the crate's
//! build script (`#[cfg_attr(errand_skip, ignore = …)]`): without
//! `ERRAND_POSTGRES_URL` it is reported as ignored.

#![allow(dead_code, unreachable_pub)]

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use errand_postgres::sqlx::{self, Connection, PgPool};
use errand_postgres::{PostgresBackend, PostgresBuilder};
use errand_runtime::Codec;

/// Test schemas older than this are leftovers of crashed runs: dropped.
const STALE_SECS: u64 = 3600;

/// `ERRAND_POSTGRES_URL` (the tests that call this are ignored without it).
pub fn url() -> String {
    errand_runtime::testing::service_url("ERRAND_POSTGRES_URL")
}

/// A new schema name, `errand_test_<unix seconds>_<random>`.
pub fn fresh_schema() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    format!("errand_test_{secs}_{:012x}", h.finish() & 0xffff_ffff_ffff)
}

/// A pool for tests.
pub async fn pool(url: &str) -> PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(12)
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test server: {e}"))
}

/// Drops test schemas left behind by runs more than an hour old.
pub async fn drop_stale_schemas(pool: &PgPool) {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'errand\\_test\\_%'")
            .fetch_all(pool)
            .await
            .unwrap_or_default();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    for name in names {
        let created = name.split('_').nth(2).and_then(|s| s.parse::<u64>().ok());
        if created.is_some_and(|c| c + STALE_SECS < now) {
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE")).execute(pool).await;
        }
    }
}

/// A migrated backend in a fresh schema, with the default settings.
pub async fn backend(url: &str) -> PostgresBackend {
    backend_with(url, |b| b).await
}

/// A migrated backend in a fresh schema, with the settings `configure`
/// makes (the schema is set afterwards).
pub async fn backend_with<C: Codec>(
    url: &str,
    configure: impl FnOnce(PostgresBuilder) -> PostgresBuilder<C>,
) -> PostgresBackend<C> {
    backend_in(url, &fresh_schema(), configure).await
}

/// A migrated backend in schema `schema`, with the settings `configure`
/// makes (the schema is set afterwards).
pub async fn backend_in<C: Codec>(
    url: &str,
    schema: &str,
    configure: impl FnOnce(PostgresBuilder) -> PostgresBuilder<C>,
) -> PostgresBackend<C> {
    let pool = pool(url).await;
    drop_stale_schemas(&pool).await;
    let backend =
        configure(PostgresBackend::builder()).namespace(schema).from_pool(pool).unwrap_or_else(|e| panic!("{e}"));
    backend.migrate().await.unwrap_or_else(|e| panic!("migrate failed: {e}"));
    backend
}

/// Another backend value on `backend`'s schema, with a pool of its own (as
/// another process would have) and the settings `configure` makes.
pub async fn attach<C: Codec, D: Codec>(
    url: &str,
    backend: &PostgresBackend<C>,
    configure: impl FnOnce(PostgresBuilder) -> PostgresBuilder<D>,
) -> PostgresBackend<D> {
    configure(PostgresBackend::builder())
        .namespace(backend.namespace())
        .from_pool(pool(url).await)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Drops the backend's schema.
pub async fn drop_schema<C: Codec>(backend: &PostgresBackend<C>) {
    let sql = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", backend.namespace());
    let _ = sqlx::query(&sql).execute(backend.pool()).await;
}

/// Drops a schema when it goes out of scope, passed or panicked: on a
/// thread with a runtime of its own, since the test's is shutting down.
#[derive(Debug)]
pub struct DropSchema {
    pub url: String,
    pub schema: String,
}

impl DropSchema {
    /// A guard for `backend`'s schema.
    pub fn of<C: Codec>(url: &str, backend: &PostgresBackend<C>) -> Self {
        Self { url: url.to_owned(), schema: backend.namespace().to_owned() }
    }
}

impl Drop for DropSchema {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        errand_runtime::testing::clean_up_blocking(Duration::from_secs(10), move || async move {
            let mut conn = sqlx::PgConnection::connect(&url).await?;
            let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
            sqlx::raw_sql(&sql).execute(&mut conn).await
        });
    }
}
