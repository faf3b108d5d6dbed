//! Versioned migrations, safe when several processes start at once.
//!
//! errand keeps its own record, `<prefix>migrations`, instead of sqlx's
//! `_sqlx_migrations`, so it never clashes with the application's own sqlx
//! migrations in the same database. Each run first takes a named lock
//! (`GET_LOCK`) derived from the database and the prefix, on a connection of
//! its own that is closed at the end: concurrent `migrate`s apply each
//! migration once, one after the other, and the lock goes with the
//! connection even if a migration fails half-way. The runtime's runner
//! (`errand_runtime::backend::stored::migrate`) applies each pending
//! migration once, in order, and refuses tables migrated by a newer errand
//! or whose applied migrations changed.
//!
//! MySQL commits every DDL statement on its own: a migration is not atomic.
//! Its statements are idempotent (`CREATE TABLE IF NOT EXISTS`), so one that
//! failed half-way is completed by the next `migrate`.

use errand_runtime::backend::stored::{self, AppliedMigration, Migration, MigrationStore};
use errand_runtime::{Error, Timestamp};
use sqlx::{Executor, MySqlConnection};

use crate::Inner;
use crate::rows::{self, Stored, query_error, wrong_reply};
use crate::sql::{MIGRATIONS, Queries};

/// How long a `migrate` waits for another process's migration, in seconds.
const LOCK_WAIT_SECONDS: i64 = 60;

/// The record of one namespace's migrations, on the migrating connection.
struct Store<'a> {
    conn: &'a mut MySqlConnection,
    inner: &'a Inner,
    /// The tables and server, for messages.
    place: &'a str,
}

impl MigrationStore for Store<'_> {
    async fn applied(&mut self) -> Result<Vec<AppliedMigration>, Error> {
        let operation = || format!("read the errand migrations of {}", self.place);
        let queries = &self.inner.queries;
        self.conn.execute(queries.migrations_table.as_str()).await.map_err(query_error(operation()))?;
        let found = sqlx::query(&queries.migrations_applied)
            .fetch_all(&mut *self.conn)
            .await
            .map_err(query_error(operation()))?;
        let what = format!("the migration record of {}", self.place);
        rows::stored(found)
            .iter()
            .map(|row: &Stored| {
                Ok(AppliedMigration {
                    version: rows::int(row, "version", &what)?,
                    description: rows::text(row, "description", &what)?,
                    checksum: rows::text(row, "checksum", &what)?,
                })
            })
            .collect()
    }

    async fn apply(&mut self, migration: &Migration, checksum: &str) -> Result<(), Error> {
        let operation = || format!("apply errand migration {} to {}", migration.version, self.place);
        for statement in Queries::migration(migration, &self.inner.prefix) {
            self.conn.execute(statement.as_str()).await.map_err(query_error(operation()))?;
        }
        sqlx::query(&self.inner.queries.migrations_record)
            .bind(migration.version)
            .bind(migration.description)
            .bind(checksum)
            .bind(Timestamp::now().as_millis())
            .execute(&mut *self.conn)
            .await
            .map_err(query_error(operation()))?;
        Ok(())
    }
}

/// Checks the server, then applies every migration not applied yet.
pub(crate) async fn run(inner: &Inner) -> Result<(), Error> {
    inner.server().await?;
    let place = format!("the `{}*` tables of `{}`", inner.prefix, inner.location);
    let operation = || format!("migrate {place}");
    // A connection of its own, closed at the end: the named lock is the
    // session's, and goes with it whatever happens.
    let mut conn = inner.pool.acquire().await.map_err(query_error(operation()))?.detach();
    let locked: Option<i64> = sqlx::query_scalar(
        "SELECT GET_LOCK(CONCAT('errand-migrate-', LEFT(SHA2(CONCAT(DATABASE(), '.', ?), 256), 40)), ?)",
    )
    .bind(&inner.prefix)
    .bind(LOCK_WAIT_SECONDS)
    .fetch_one(&mut conn)
    .await
    .map_err(query_error(operation()))?;
    if locked != Some(1) {
        return Err(wrong_reply(
            operation(),
            format!("another process held the migration lock for {LOCK_WAIT_SECONDS} s; try again"),
        ));
    }
    let mut store = Store { conn: &mut conn, inner, place: &place };
    let migrated = stored::migrate(&mut store, "errand-mysql", &place, MIGRATIONS, stored::checksum).await;
    let _ = sqlx::Connection::close(conn).await;
    migrated.map(|_| ())
}
