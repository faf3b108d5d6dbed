//! Versioned migrations: `impl MigrationStore` for a SQLite transaction, the
//! entry point [`run`] behind `SqliteBackend::migrate` and the builder's
//! `connect`, and [`pending`] behind `SqliteBackend::pending_migrations`.
//!
//! sqlx's own migrator records migrations in a fixed `_sqlx_migrations` table.
//! errand's tables often live in the application's own database file (that is
//! what makes [transactional enqueue](errand_runtime::capability::Transactional)
//! possible), and an application that also uses `sqlx::migrate!` would then see
//! errand's versions as its own ("migration 1 was previously applied but is
//! missing"). So errand keeps its own record, `errand_migrations`, with the
//! same guarantees: each migration runs once, in order, inside a transaction, and
//! a migration changed after it was applied is reported instead of ignored (the
//! runtime's [`migrate`](errand_runtime::backend::stored::migrate) runner).
//! [`pending`] reads that record without writing (for `errand migrate
//! --check`): the migrations not applied yet, by file name.

use errand_runtime::backend::stored::{self, AppliedMigration, Migration, MigrationStore};
use errand_runtime::{Error, Timestamp};
use sqlx::{Connection, SqliteConnection, SqlitePool};

use crate::rows::{Stored, query_error};
use crate::sql;

/// The record of applied migrations, read and written on one transaction.
struct Record<'c> {
    conn: &'c mut SqliteConnection,
    location: &'c str,
    /// When the migrations are applied, by the backend's clock.
    now: Timestamp,
}

/// The migrations recorded in `errand_migrations`, which must exist.
async fn read_applied(conn: &mut SqliteConnection, location: &str) -> Result<Vec<AppliedMigration>, Error> {
    let operation = || format!("read the errand migrations of database `{location}`");
    let rows = sqlx::query(sql::MIGRATIONS_APPLIED).fetch_all(&mut *conn).await.map_err(query_error(operation()))?;
    let place = format!("database `{location}`");
    rows.into_iter().map(|row| stored::read_applied_migration(crate::NAME, &place, &Stored(row))).collect()
}

impl MigrationStore for Record<'_> {
    async fn applied(&mut self) -> Result<Vec<AppliedMigration>, Error> {
        let operation = || format!("read the errand migrations of database `{}`", self.location);
        sqlx::query(sql::MIGRATIONS_TABLE).execute(&mut *self.conn).await.map_err(query_error(operation()))?;
        read_applied(self.conn, self.location).await
    }

    async fn apply(&mut self, migration: &Migration, checksum: &str) -> Result<(), Error> {
        let operation =
            || format!("apply errand schema migration {} to database `{}`", migration.version, self.location);
        sqlx::query(migration.sql)
            .persistent(false)
            .execute(&mut *self.conn)
            .await
            .map_err(query_error(operation()))?;
        sqlx::query(sql::MIGRATION_RECORD)
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

/// Applies every migration not applied yet, all in one write transaction
/// (`BEGIN IMMEDIATE`, so two processes starting at once migrate one after
/// the other). The checksum is the runtime's FNV-1a of the SQL, as errand-sqlite
/// always recorded it, so existing databases keep validating.
pub(crate) async fn run(pool: &SqlitePool, location: &str, now: Timestamp) -> Result<(), Error> {
    let operation = || format!("migrate database `{location}`");
    let mut conn = pool.acquire().await.map_err(query_error(operation()))?;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(query_error(operation()))?;
    let place = format!("database `{location}`");
    let mut record = Record { conn: &mut tx, location, now };
    stored::migrate(&mut record, "errand-sqlite", &place, sql::MIGRATIONS, stored::checksum).await?;
    tx.commit().await.map_err(query_error(operation()))
}

/// The names of the migrations not applied yet (all of them on a fresh
/// database), read in one transaction without writing anything: the record
/// `errand_migrations` is not created when missing.
///
/// # Errors
///
/// [`Error::Schema`] as [`run`] (a migration this version does not know, or
/// one applied from different SQL); [`Error::Backend`] when the record
/// cannot be read.
pub(crate) async fn pending(pool: &SqlitePool, location: &str) -> Result<Vec<String>, Error> {
    let operation = || format!("read the errand migrations of database `{location}`");
    let mut conn = pool.acquire().await.map_err(query_error(operation()))?;
    let mut tx = conn.begin().await.map_err(query_error(operation()))?;
    let recorded: i64 =
        sqlx::query_scalar(sql::MIGRATIONS_EXIST).fetch_one(&mut *tx).await.map_err(query_error(operation()))?;
    let applied = if recorded > 0 { read_applied(&mut tx, location).await? } else { Vec::new() };
    tx.commit().await.map_err(query_error(operation()))?;
    let place = format!("database `{location}`");
    let pending = stored::pending_migrations("errand-sqlite", &place, sql::MIGRATIONS, &applied, &stored::checksum)?;
    Ok(pending.iter().map(|m| sql::migration_name(m.version)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checksums that databases migrated by earlier releases recorded
    /// (plain FNV-1a of the SQL): a change here would make every existing
    /// database fail to open.
    #[test]
    fn checksums_match_what_existing_databases_recorded() {
        let sums: Vec<(i64, String)> = sql::MIGRATIONS.iter().map(|m| (m.version, stored::checksum(m.sql))).collect();
        assert_eq!(
            sums,
            [
                (1, "a2e44c5b677c078f".to_owned()),
                (2, "c14aa03bf9df6402".to_owned()),
                (3, "1a20f1c9e5632c16".to_owned()),
                (4, "6483f7a48e882b59".to_owned()),
                (5, "0a1a6762fdaab567".to_owned()),
                (6, "cdaa6bf24f1a94e8".to_owned())
            ]
        );
    }

    /// Each migration's name is its file's, led by its version.
    #[test]
    fn migrations_are_named_after_their_files() {
        assert_eq!(sql::MIGRATIONS.len(), sql::MIGRATION_NAMES.len());
        for (migration, name) in sql::MIGRATIONS.iter().zip(sql::MIGRATION_NAMES) {
            assert!(name.starts_with(&format!("{:04}_", migration.version)), "{name}");
            assert_eq!(sql::migration_name(migration.version), *name);
        }
        assert_eq!(sql::migration_name(4), "0004_progress_pause_schedules");
        assert_eq!(sql::migration_name(99), "0099");
    }
}
