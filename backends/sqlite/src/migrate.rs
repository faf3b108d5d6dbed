//! A small versioned migration runner.
//!
//! sqlx's own migrator records migrations in a fixed `_sqlx_migrations` table.
//! errand's tables often live in the application's own database file (that is
//! what makes [transactional enqueue](crate::SqliteBackend::enqueue_in)
//! possible), and an application that also uses `sqlx::migrate!` would then see
//! errand's versions as its own ("migration 1 was previously applied but is
//! missing"). So errand keeps its own record, `errand_migrations`, with the
//! same guarantees: each migration runs once, in order, inside a transaction, and
//! a migration changed after it was applied is reported instead of ignored.

use errand_runtime::stored::{AppliedMigration, pending_migrations};
use errand_runtime::{Error, Timestamp};
use sqlx::{Row, SqlitePool};

use crate::rows::{bad_data, query_error};
use crate::sql::{MIGRATIONS, MIGRATIONS_TABLE};

/// FNV-1a: a stable fingerprint of a migration's text (not a security measure).
fn checksum(sql: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in sql.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Applies every migration not applied yet, all in one write
/// transaction (`BEGIN IMMEDIATE`, so two processes starting at once migrate
/// one after the other).
pub(crate) async fn run(pool: &SqlitePool, location: &str) -> Result<(), Error> {
    let operation = || format!("migrate database `{location}`");
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(query_error(operation()))?;
    sqlx::query(MIGRATIONS_TABLE).execute(&mut *tx).await.map_err(query_error(operation()))?;
    let applied = sqlx::query("SELECT version, description, checksum FROM errand_migrations ORDER BY version")
        .fetch_all(&mut *tx)
        .await
        .map_err(query_error(operation()))?;

    let what = format!("the migration record of `{location}`");
    let mut recorded = Vec::with_capacity(applied.len());
    for row in &applied {
        recorded.push(AppliedMigration {
            version: row.try_get(0).map_err(|e| bad_data(&what, e.to_string()))?,
            description: row.try_get(1).map_err(|e| bad_data(&what, e.to_string()))?,
            checksum: row.try_get(2).map_err(|e| bad_data(&what, e.to_string()))?,
        });
    }
    let pending =
        pending_migrations("errand-sqlite", &format!("database `{location}`"), MIGRATIONS, &recorded, checksum)?;

    for migration in pending {
        let operation = || format!("apply errand schema migration {} to `{location}`", migration.version);
        sqlx::query(migration.sql).persistent(false).execute(&mut *tx).await.map_err(query_error(operation()))?;
        sqlx::query(
            "INSERT INTO errand_migrations (version, description, checksum, applied_at) VALUES (?1, ?2, ?3, ?4)",
        )
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
