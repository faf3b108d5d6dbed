//! Connecting: URL parsing and validation, the pool, the schema name, and
//! the builder's terminals.

use std::str::FromStr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use errand_runtime::backend::{Notifier, redact_url};
use errand_runtime::{BackendError, Codec, Error};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::sql::Queries;
use crate::{Inner, NAME, PostgresBackend, PostgresBuilder};

/// Connections of a pool opened by [`PostgresBuilder::connect`].
const POOL_SIZE: u32 = 16;
/// How long to wait for a pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// A pooled connection idle for this long is pinged before it is used.
const PING_IDLE: Duration = Duration::from_secs(1);
/// Longest schema name (a NOTIFY channel name is derived from it and must fit
/// PostgreSQL's 63-byte identifiers).
const MAX_SCHEMA_LEN: usize = 48;

impl<C: Codec> PostgresBuilder<C> {
    /// Connects to `url` (`postgres://user:password@host:5432/database`),
    /// opening a pool of up to 16 connections, and migrates the schema,
    /// creating it if missing (unless [`migrate`](Self::migrate)`(false)`).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a malformed URL or schema name;
    /// [`Error::Schema`] for a schema migrated by a newer errand or with
    /// changed migrations; [`Error::Backend`] naming the URL (without its
    /// password) when the server is unreachable, refuses the credentials, the
    /// database does not exist, or a migration fails.
    pub async fn connect(self, url: &str) -> Result<PostgresBackend<C>, Error> {
        validate_schema(&self.namespace)?;
        let (options, location) = parse_url(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    // sqlx would ping on every acquire: a round trip per
                    // statement. A connection used within the last second is
                    // taken as alive (if it broke since, the statement fails
                    // and workers retry); an idler one is pinged first.
                    if meta.idle_for >= PING_IDLE {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| Error::Backend(BackendError::new(NAME, format!("connect to `{location}`"), e)))?;
        let migrate = self.migrate;
        let backend = self.build(pool, location);
        if migrate {
            backend.migrate().await?;
        }
        Ok(backend)
    }

    /// Uses an existing pool, without migrating: call
    /// [`migrate`](PostgresBackend::migrate) once. Give the pool room for
    /// every worker's claims and acks; the listener opens one more
    /// connection of its own.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a schema name that is not 1 to 48 lowercase
    /// ASCII letters, digits and `_`, starting with a letter or `_`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(pool: errand_postgres::sqlx::PgPool) -> Result<(), errand_runtime::Error> {
    /// let backend = errand_postgres::PostgresBackend::builder().namespace("jobs").from_pool(pool)?;
    /// backend.migrate().await?;
    /// # Ok(()) }
    /// ```
    pub fn from_pool(self, pool: PgPool) -> Result<PostgresBackend<C>, Error> {
        validate_schema(&self.namespace)?;
        let location = location_of(&pool);
        Ok(self.build(pool, location))
    }

    fn build(self, pool: PgPool, location: String) -> PostgresBackend<C> {
        let schema = self.namespace;
        PostgresBackend::from_inner(Inner {
            queries: Queries::new(&schema),
            channel: format!("errand.{schema}"),
            schema,
            pool,
            tuning: self.tuning,
            vacuum_every: self.vacuum_every,
            notifier: Notifier::new(),
            listener: OnceLock::new(),
            purge_due: crate::retention::pace(self.tuning.retention),
            location,
            doubts: crate::doubt::Doubts::default(),
            announcer: crate::announce::Announcer::default(),
            pushing: AtomicUsize::new(0),
            vacuum: Arc::default(),
        })
    }
}

/// Checks that `name` is a plain lowercase SQL identifier, safe to quote
/// into every statement and to derive the NOTIFY channel from.
fn validate_schema(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= MAX_SCHEMA_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with("pg_");
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "invalid schema name `{name}` for the PostgreSQL backend: use 1 to {MAX_SCHEMA_LEN} lowercase \
             letters, digits and `_`, starting with a letter or `_` (and not `pg_`)"
        )))
    }
}

/// The connection options of `url`, and the URL without its password.
fn parse_url(url: &str) -> Result<(PgConnectOptions, String), Error> {
    let location = redact_url(url);
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(Error::Config(format!(
            "`{location}` is not a PostgreSQL URL: expected `postgres://user:password@host:5432/database`"
        )));
    }
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| Error::Config(format!("invalid PostgreSQL URL `{location}`: {e}")))?;
    Ok((options, location))
}

/// Where `pool` connects, without password, for messages.
fn location_of(pool: &PgPool) -> String {
    let options = pool.connect_options();
    let database = options.get_database().unwrap_or("");
    format!("postgres://{}@{}:{}/{database}", options.get_username(), options.get_host(), options.get_port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_checked() {
        assert!(validate_schema("errand_test_1").is_ok());
        assert!(validate_schema("_jobs").is_ok());
        for bad in ["", "Errand", "a-b", "a;drop", "1abc", "pg_x", "a\"b", &"x".repeat(49)] {
            assert!(validate_schema(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_are_checked_and_redacted() {
        let err = parse_url("mysql://u:secret@localhost/db").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("not a PostgreSQL URL") && err.contains("u:***@") && !err.contains("secret"), "{err}");
        for (url, shown) in [
            ("postgres://u:secret@h:5432/db", "postgres://u:***@h:5432/db"),
            ("postgres://u@h/db?password=x&sslmode=disable", "postgres://u@h/db?password=***&sslmode=disable"),
            ("postgres://h/db", "postgres://h/db"),
        ] {
            let (_, location) = parse_url(url).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(location, shown);
        }
    }
}
