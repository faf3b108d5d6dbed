//! Versioned migrations, safe when several processes start at once.
//!
//! errand keeps its own record, `<schema>.migrations`, instead of sqlx's
//! `_sqlx_migrations`, so it never clashes with the application's own sqlx
//! migrations in the same database. Each run takes a transaction-scoped
//! advisory lock derived from the schema name before touching anything, so
//! concurrent `migrate`s apply each migration once, one after the other; the
//! runtime's runner (`errand_runtime::backend::stored::migrate`) applies each
//! pending migration once, in order, inside that transaction, and refuses a
//! schema migrated by a newer errand or whose applied migrations changed.

use errand_runtime::backend::fnv1a_parts;
use errand_runtime::backend::stored::{self, AppliedMigration, Migration, MigrationStore};
use errand_runtime::{Error, Timestamp};
use sqlx::{Connection, Executor, PgConnection};

use crate::Inner;
use crate::rows::{self, query_error};
use crate::sql::{MIGRATIONS, Queries, migration_name};

/// A migration's checksum as this backend has always recorded it: FNV-1a of
/// its SQL followed by a separator byte, as 16 hex digits. (It differs from
/// the runtime's `stored::checksum`; schemas migrated by earlier releases
/// must keep validating.)
fn checksum(sql: &str) -> String {
    format!("{:016x}", fnv1a_parts(&[sql.as_bytes()]))
}

/// The advisory lock id that serialises migrations of `schema`.
fn lock_id(schema: &str) -> i64 {
    i64::from_ne_bytes(fnv1a_parts(&[b"errand-postgres migrate", schema.as_bytes()]).to_ne_bytes())
}

/// The record of one schema's migrations, inside the migrating transaction.
struct Store<'a> {
    conn: &'a mut PgConnection,
    queries: &'a Queries,
    /// The schema and server, for messages.
    place: &'a str,
    /// When, by the backend's clock, for the record.
    now: Timestamp,
}

impl MigrationStore for Store<'_> {
    async fn applied(&mut self) -> Result<Vec<AppliedMigration>, Error> {
        let operation = || format!("read the errand migrations of {}", self.place);
        self.conn.execute(self.queries.migrations_table.as_str()).await.map_err(query_error(operation()))?;
        read_applied(&mut *self.conn, self.queries, self.place).await
    }

    async fn apply(&mut self, migration: &Migration, checksum: &str) -> Result<(), Error> {
        let operation = || format!("apply errand migration {} to {}", migration.version, self.place);
        let sql = self.queries.migration(migration);
        self.conn.execute(sql.as_str()).await.map_err(query_error(operation()))?;
        sqlx::query(&self.queries.migrations_record)
            .bind(migration.version)
            .bind(migration.description)
            .bind(checksum)
            .bind(self.now.as_millis())
            .execute(&mut *self.conn)
            .await
            .map_err(query_error(operation()))?;
        Ok(())
    }
}

/// The migrations `<schema>.migrations` records, in version order.
async fn read_applied(conn: &mut PgConnection, queries: &Queries, place: &str) -> Result<Vec<AppliedMigration>, Error> {
    let found = sqlx::query(&queries.migrations_applied)
        .fetch_all(conn)
        .await
        .map_err(query_error(format!("read the errand migrations of {place}")))?;
    rows::stored(found).iter().map(|row| stored::read_applied_migration(crate::NAME, place, row)).collect()
}

/// The names of the migrations not applied yet, in order (every one when
/// the schema or its migration record does not exist), read without
/// creating or locking anything; refuses what [`run`] refuses.
pub(crate) async fn pending(inner: &Inner) -> Result<Vec<String>, Error> {
    let place = format!("schema `{}` of `{}`", inner.schema, inner.location);
    let operation = || format!("read the errand migrations of {place}");
    let mut conn = inner.pool.acquire().await.map_err(query_error(operation()))?;
    let record: Option<String> = sqlx::query_scalar(&inner.queries.migrations_exist)
        .fetch_one(&mut *conn)
        .await
        .map_err(query_error(operation()))?;
    let applied = match record {
        Some(_) => read_applied(&mut conn, &inner.queries, &place).await?,
        None => Vec::new(),
    };
    let pending = stored::pending_migrations("errand-postgres", &place, MIGRATIONS, &applied, &checksum)?;
    Ok(pending.into_iter().map(migration_name).collect())
}

/// Creates the schema and applies every migration not applied yet.
pub(crate) async fn run(inner: &Inner) -> Result<(), Error> {
    let place = format!("schema `{}` of `{}`", inner.schema, inner.location);
    let operation = || format!("migrate {place}");
    let mut conn = inner.pool.acquire().await.map_err(query_error(operation()))?;
    let mut tx = conn.begin().await.map_err(query_error(operation()))?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(lock_id(&inner.schema))
        .execute(&mut *tx)
        .await
        .map_err(query_error(operation()))?;
    let create = format!("CREATE SCHEMA IF NOT EXISTS {}", inner.queries.schema);
    tx.execute(create.as_str()).await.map_err(query_error(operation()))?;
    let mut store = Store { conn: &mut tx, queries: &inner.queries, place: &place, now: inner.now() };
    stored::migrate(&mut store, "errand-postgres", &place, MIGRATIONS, checksum).await?;
    tx.commit().await.map_err(query_error(operation()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_and_lock_ids_keep_their_values() {
        // FNV-1a over the bytes, then the separator 0xff, as earlier releases.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in b"CREATE TABLE t ()".iter().chain(&[0xff]) {
            hash = (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        assert_eq!(checksum("CREATE TABLE t ()"), format!("{hash:016x}"));
        assert_ne!(checksum("CREATE TABLE t ()"), stored::checksum("CREATE TABLE t ()"));
        assert_ne!(lock_id("a"), lock_id("b"));
    }

    #[test]
    fn migrations_are_named_after_their_files() {
        assert_eq!(crate::sql::MIGRATION_NAMES.len(), MIGRATIONS.len());
        for (i, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, i64::try_from(i + 1).unwrap_or(0), "versions ascend from 1");
            let name = migration_name(migration);
            assert!(name.starts_with(&format!("{:04}_", migration.version)), "{name}");
        }
        assert_eq!(migration_name(&MIGRATIONS[5]), "0006_progress_pauses_schedules");
    }
}
