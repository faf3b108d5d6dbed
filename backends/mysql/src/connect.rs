//! Connecting: URL parsing and validation, the pool, the namespace, what
//! the server is, and the builder's terminals.

use std::str::FromStr;
use std::time::Duration;

use errand_runtime::backend::{Notifier, redact_url};
use errand_runtime::{BackendError, Codec, Error};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{Executor, MySqlPool, Row};

use crate::rows::{query_error, wrong_reply};
use crate::sql::Queries;
use crate::version::{Flavor, ServerVersion};
use crate::{Inner, MysqlBackend, MysqlBuilder, NAME};

/// Connections of a pool opened by [`MysqlBuilder::connect`].
const POOL_SIZE: u32 = 16;
/// How long to wait for a pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// A pooled connection idle for this long is pinged before it is used.
const PING_IDLE: Duration = Duration::from_secs(1);
/// Prepared statements kept per connection (every statement of the backend,
/// and the sizes of bulk inserts).
const STATEMENT_CACHE: usize = 256;
/// Longest namespace: the longest table name it prefixes must fit MySQL's
/// 64-character identifiers.
const MAX_PREFIX_LEN: usize = 40;
/// What every connection of the backend's own pool runs first: claims and
/// acks lock only the rows they change (no gap locks, which would block
/// enqueues), and each statement reads what was committed when it started.
const SESSION_SETUP: &str = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED";

/// What the backend knows of its server, read once.
#[derive(Debug, Clone)]
pub(crate) struct Server {
    pub(crate) version: ServerVersion,
    /// `@@auto_increment_increment`: the step between two ids of one insert.
    pub(crate) id_step: i64,
    /// `@@max_allowed_packet`: the largest statement the server accepts.
    pub(crate) max_packet: usize,
}

impl Server {
    /// Whether a multi-row insert returns its ids (`RETURNING`, MariaDB).
    pub(crate) fn returning(&self) -> bool {
        self.version.flavor == Flavor::MariaDb
    }
}

impl Inner {
    /// The server's version and settings, read on first use; refused when
    /// it lacks `SKIP LOCKED`.
    pub(crate) async fn server(&self) -> Result<&Server, Error> {
        self.server
            .get_or_try_init(|| async {
                let operation = || format!("read the version of the server at `{}`", self.location);
                let row =
                    sqlx::query(&self.queries.server).fetch_one(&self.pool).await.map_err(query_error(operation()))?;
                let text: String = row
                    .try_get::<Option<String>, _>("version")
                    .ok()
                    .flatten()
                    .or_else(|| {
                        row.try_get_unchecked::<Option<Vec<u8>>, _>("version")
                            .ok()
                            .flatten()
                            .map(|b| String::from_utf8_lossy(&b).into_owned())
                    })
                    .ok_or_else(|| wrong_reply(operation(), "no version came back"))?;
                let version = ServerVersion::parse(&text).map_err(|problem| wrong_reply(operation(), problem))?;
                version.check().map_err(|problem| {
                    Error::Backend(BackendError::new(NAME, format!("use the server at `{}`", self.location), problem))
                })?;
                let id_step: i64 = row.try_get("id_step").map_err(query_error(operation()))?;
                let max_packet: i64 = row.try_get("max_packet").map_err(query_error(operation()))?;
                Ok(Server {
                    version,
                    id_step: id_step.max(1),
                    max_packet: usize::try_from(max_packet).unwrap_or(1024 * 1024).max(64 * 1024),
                })
            })
            .await
    }
}

impl<C: Codec> MysqlBuilder<C> {
    /// Connects to `url` (`mysql://user:password@host:3306/database`),
    /// opening a pool of up to 16 connections (each in `READ COMMITTED`),
    /// checks the server's version and migrates the tables, creating them if
    /// missing (unless [`migrate(false)`](Self::migrate): then it only
    /// checks the server).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a malformed URL or namespace; [`Error::Schema`]
    /// (when migrating) for tables migrated by a newer errand or with
    /// changed migrations;
    /// [`Error::Backend`] naming the URL (without its password) when the
    /// server is unreachable, refuses the credentials, the database does not
    /// exist, the server is older than MySQL 8.0 / MariaDB 10.6 (no
    /// `SKIP LOCKED`; the message names its version), or a migration fails.
    pub async fn connect(self, url: &str) -> Result<MysqlBackend<C>, Error> {
        validate_prefix(&self.namespace)?;
        let (options, location) = parse_url(url)?;
        let pool = MySqlPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(false)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(SESSION_SETUP).await?;
                    Ok(())
                })
            })
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
            .connect_with(options.statement_cache_capacity(STATEMENT_CACHE))
            .await
            .map_err(|e| Error::Backend(BackendError::new(NAME, format!("connect to `{location}`"), e)))?;
        let migrate = self.migrate;
        let backend = self.build(pool, location);
        if migrate {
            backend.migrate().await?;
        } else {
            backend.inner.server().await?;
        }
        Ok(backend)
    }

    /// Uses an existing pool, without migrating: call
    /// [`migrate`](MysqlBackend::migrate) once. Give the pool room for every
    /// worker's claims and acks, and make its connections `READ COMMITTED`
    /// (an `after_connect` running `SET SESSION TRANSACTION ISOLATION LEVEL
    /// READ COMMITTED`, as [`connect`](Self::connect) does): under MySQL's
    /// default `REPEATABLE READ`, claims take gap locks that make enqueues
    /// wait.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a namespace that is not 1 to 40 lowercase ASCII
    /// letters, digits and `_`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(pool: errand_mysql::sqlx::MySqlPool) -> Result<(), errand_runtime::Error> {
    /// let backend = errand_mysql::MysqlBackend::builder().namespace("jobs_").from_pool(pool)?;
    /// backend.migrate().await?;
    /// # Ok(()) }
    /// ```
    pub fn from_pool(self, pool: MySqlPool) -> Result<MysqlBackend<C>, Error> {
        validate_prefix(&self.namespace)?;
        let location = location_of(&pool);
        Ok(self.build(pool, location))
    }

    fn build(self, pool: MySqlPool, location: String) -> MysqlBackend<C> {
        let prefix = self.namespace;
        MysqlBackend::from_inner(Inner {
            queries: Queries::new(&prefix),
            prefix,
            pool,
            tuning: self.tuning,
            notifier: Notifier::new(),
            poll: crate::poll::Poll::new(self.idle_poll.0, self.idle_poll.1),
            location,
            doubts: crate::doubt::Doubts::default(),
            handoffs: errand_runtime::backend::Handoffs::default(),
            server: tokio::sync::OnceCell::new(),
        })
    }
}

/// Checks that `prefix` is lowercase ASCII letters, digits and `_`, so that
/// it can be pasted into backquoted table names.
pub(crate) fn validate_prefix(prefix: &str) -> Result<(), Error> {
    let ok = !prefix.is_empty()
        && prefix.len() <= MAX_PREFIX_LEN
        && prefix.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "invalid table name prefix `{prefix}` for the MySQL backend: use 1 to {MAX_PREFIX_LEN} lowercase \
             letters, digits and `_` (e.g. `errand_`)"
        )))
    }
}

/// The connection options of `url`, and the URL without its password.
pub(crate) fn parse_url(url: &str) -> Result<(MySqlConnectOptions, String), Error> {
    let location = redact_url(url);
    if !(url.starts_with("mysql://") || url.starts_with("mariadb://")) {
        return Err(Error::Config(format!(
            "`{location}` is not a MySQL URL: expected `mysql://user:password@host:3306/database`"
        )));
    }
    let options = MySqlConnectOptions::from_str(url)
        .map_err(|e| Error::Config(format!("invalid MySQL URL `{location}`: {}", redact_url(&e.to_string()))))?;
    if options.get_database().is_none_or(str::is_empty) {
        return Err(Error::Config(format!(
            "the MySQL URL `{location}` names no database: expected `mysql://user:password@host:3306/database`"
        )));
    }
    Ok((options, location))
}

/// Where `pool` connects, without password, for messages.
fn location_of(pool: &MySqlPool) -> String {
    let options = pool.connect_options();
    let database = options.get_database().unwrap_or("");
    format!("mysql://{}@{}:{}/{database}", options.get_username(), options.get_host(), options.get_port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_checked() {
        for good in ["errand_", "jobs", "t_1_", "_x"] {
            assert!(validate_prefix(good).is_ok(), "{good}");
        }
        for bad in ["", "Errand_", "a-b", "a;drop", "a`b", "é", &"x".repeat(41)] {
            let error = validate_prefix(bad).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(error.contains("prefix") && error.contains("MySQL"), "{bad}: {error}");
        }
    }

    #[test]
    fn urls_are_checked_and_redacted() {
        let err = parse_url("postgres://u:secret@localhost/db").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("not a MySQL URL") && err.contains("u:***@") && !err.contains("secret"), "{err}");
        let err = parse_url("mysql://u:secret@localhost:3306").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("no database") && !err.contains("secret"), "{err}");
        for (url, shown) in [
            ("mysql://u:secret@h:3306/db", "mysql://u:***@h:3306/db"),
            ("mysql://u@h/db?password=x&ssl-mode=disabled", "mysql://u@h/db?password=***&ssl-mode=disabled"),
            ("mariadb://h/db", "mariadb://h/db"),
        ] {
            let (_, location) = parse_url(url).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(location, shown);
        }
    }
}
