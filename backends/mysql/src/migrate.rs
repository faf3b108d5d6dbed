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
//! Its statements are idempotent (`CREATE TABLE IF NOT EXISTS`; an `ALTER`
//! is prepared only when `information_schema` shows it is still needed), so
//! one that failed half-way is completed by the next `migrate`.
//!
//! [`pending`] says what `migrate` would apply without applying it, nor
//! creating anything, nor taking the lock: it reads the record only when
//! `information_schema` shows it exists, and checks it as `migrate` does.

use errand_runtime::backend::stored::{self, AppliedMigration, Migration, MigrationStore};
use errand_runtime::{Error, Timestamp};
use sqlx::{Executor, MySqlConnection};

use crate::Inner;
use crate::rows::{self, query_error, wrong_reply};
use crate::sql::{MIGRATIONS, Queries, migration_name};

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
        let queries = &self.inner.queries;
        self.conn
            .execute(queries.migrations_table.as_str())
            .await
            .map_err(query_error(format!("read the errand migrations of {}", self.place)))?;
        read_applied(self.conn, self.inner, self.place).await
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

/// The migrations recorded in `<prefix>migrations`, which must exist.
async fn read_applied(conn: &mut MySqlConnection, inner: &Inner, place: &str) -> Result<Vec<AppliedMigration>, Error> {
    let found = sqlx::query(&inner.queries.migrations_applied)
        .fetch_all(&mut *conn)
        .await
        .map_err(query_error(format!("read the errand migrations of {place}")))?;
    rows::stored(found).iter().map(|row| stored::read_applied_migration(crate::NAME, place, row)).collect()
}

/// The tables and server, for messages.
fn place(inner: &Inner) -> String {
    format!("the `{}*` tables of `{}`", inner.prefix, inner.location)
}

/// The names of the shipped migrations not applied yet (every one on a
/// database errand never migrated), creating nothing: the record of applied
/// migrations is read only when it exists.
pub(crate) async fn pending(inner: &Inner) -> Result<Vec<String>, Error> {
    let place = place(inner);
    let operation = || format!("read the errand migrations of {place}");
    let mut conn = inner.pool.acquire().await.map_err(query_error(operation()))?;
    let exists: i64 = sqlx::query_scalar(&inner.queries.migrations_exist)
        .fetch_one(&mut *conn)
        .await
        .map_err(query_error(operation()))?;
    let applied = if exists == 0 { Vec::new() } else { read_applied(&mut conn, inner, &place).await? };
    let pending = stored::pending_migrations("errand-mysql", &place, MIGRATIONS, &applied, &stored::checksum)?;
    Ok(pending.into_iter().map(migration_name).collect())
}

/// Checks the server, then applies every migration not applied yet.
pub(crate) async fn run(inner: &Inner) -> Result<(), Error> {
    inner.server().await?;
    let place = place(inner);
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
