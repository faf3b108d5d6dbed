//! Versioned migrations, safe when several processes start at once.
//!
//! errand keeps its own record, `<schema>.migrations`, instead of sqlx's
//! `_sqlx_migrations`, so it never clashes with the application's own sqlx
//! migrations in the same database. Each run takes a transaction-scoped
//! advisory lock derived from the schema name before touching anything, so
//! concurrent `setup`s apply each migration once, one after the other; each
//! migration runs once, in order, inside that transaction, and a migration
//! changed after it was applied is reported instead of ignored.

use errand_runtime::stored::{AppliedMigration, pending_migrations};
use errand_runtime::{Error, Timestamp};
use sqlx::{Connection, Executor, PgPool, Row};

use crate::rows::{bad_data, query_error};
use crate::sql::{MIGRATIONS, Queries, fnv1a};

fn checksum(sql: &str) -> String {
    format!("{:016x}", fnv1a(&[sql.as_bytes()]))
}

/// The advisory lock id that serialises migrations of `schema`.
fn lock_id(schema: &str) -> i64 {
    i64::from_ne_bytes(fnv1a(&[b"errand-postgres migrate", schema.as_bytes()]).to_ne_bytes())
}

/// Applies every migration not applied yet to `schema`.
pub(crate) async fn run(pool: &PgPool, queries: &Queries, schema: &str, location: &str) -> Result<(), Error> {
    let operation = || format!("migrate schema `{schema}` of `{location}`");
    let mut conn = pool.acquire().await.map_err(query_error(operation()))?;
    let mut tx = conn.begin().await.map_err(query_error(operation()))?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(lock_id(schema))
        .execute(&mut *tx)
        .await
        .map_err(query_error(operation()))?;
    let create = format!("CREATE SCHEMA IF NOT EXISTS {}", queries.schema);
    tx.execute(create.as_str()).await.map_err(query_error(operation()))?;
    tx.execute(queries.migrations_table.as_str()).await.map_err(query_error(operation()))?;
    let applied = sqlx::query(&format!(
        "SELECT version, description, checksum FROM {}.migrations ORDER BY version",
        queries.schema
    ))
    .fetch_all(&mut *tx)
    .await
    .map_err(query_error(operation()))?;

    let what = format!("the migration record of schema `{schema}`");
    let mut recorded = Vec::with_capacity(applied.len());
    for row in &applied {
        recorded.push(AppliedMigration {
            version: row.try_get(0).map_err(|e| bad_data(&what, e.to_string()))?,
            description: row.try_get(1).map_err(|e| bad_data(&what, e.to_string()))?,
            checksum: row.try_get(2).map_err(|e| bad_data(&what, e.to_string()))?,
        });
    }
    let place = format!("schema `{schema}` of `{location}`");
    let pending = pending_migrations("errand-postgres", &place, MIGRATIONS, &recorded, checksum)?;

    for migration in pending {
        let operation = || format!("apply errand migration {} to schema `{schema}` of `{location}`", migration.version);
        let sql = queries.migration(migration);
        tx.execute(sql.as_str()).await.map_err(query_error(operation()))?;
        sqlx::query(&format!(
            "INSERT INTO {}.migrations (version, description, checksum, applied_at) VALUES ($1, $2, $3, $4)",
            queries.schema
        ))
        .bind(migration.version)
        .bind(migration.description)
        .bind(checksum(migration.sql))
        .bind(Timestamp::now().as_millis())
        .execute(&mut *tx)
        .await
        .map_err(query_error(operation()))?;
    }
    tx.commit().await.map_err(query_error(operation()))
}
