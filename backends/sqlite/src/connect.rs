//! Opening a database: URL parsing and validation, the writer connection and
//! reader pool, and the builder's terminals.

use std::marker::PhantomData;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use errand_runtime::backend::{Handoffs, Notifier, redact_url};
use errand_runtime::{BackendError, Codec, Error};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::{Inner, NAME, SqliteBackend, SqliteBuilder};

/// How long a statement waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Reader connections of a file database.
const READERS: u32 = 4;

/// A parsed connection URL.
struct Target {
    options: SqliteConnectOptions,
    memory: bool,
    location: String,
}

fn parse_url(url: &str) -> Result<Target, Error> {
    let shown = redact_url(url);
    let expected = "expected `sqlite://path/to/file.db`, `sqlite:file.db` or `sqlite::memory:`";
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return Err(Error::Config(format!("{NAME} backend: `{shown}` is not a SQLite URL: {expected}")));
    };
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, params) = rest.split_once('?').unwrap_or((rest, ""));
    let memory = path == ":memory:" || params.split('&').any(|p| p == "mode=memory");
    if path.is_empty() && !memory {
        return Err(Error::Config(format!("{NAME} backend: SQLite URL `{shown}` names no database file: {expected}")));
    }
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| Error::Config(format!("{NAME} backend: invalid SQLite URL `{shown}`: {e}")))?;
    let location = if memory { ":memory:".to_owned() } else { options.get_filename().display().to_string() };
    Ok(Target { options, memory, location })
}

fn open_error(location: &str, source: sqlx::Error) -> Error {
    let hint = match &source {
        sqlx::Error::Database(e) if e.message().contains("not a database") => {
            " (the file exists but is not a SQLite database)"
        }
        sqlx::Error::Database(e) if e.message().contains("unable to open") => {
            " (check that the directory exists and is writable)"
        }
        _ => "",
    };
    Error::Backend(BackendError::new(NAME, format!("open database `{location}`{hint}"), source))
}

impl<C: Codec> SqliteBuilder<C> {
    /// Opens (creating it if missing) and migrates the database at `url`:
    /// `sqlite://path/to/jobs.db`, `sqlite:jobs.db` or `sqlite::memory:`.
    /// With [`migrate(false)`](Self::migrate) it does not migrate.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a URL that is not a SQLite URL or names no file;
    /// [`Error::Schema`] for a database migrated by a newer errand (or whose
    /// applied migrations differ from this version's), when migrating;
    /// [`Error::Backend`]
    /// naming the path when the file cannot be created or opened (missing or
    /// read-only directory), is not a SQLite database, or cannot be migrated.
    pub async fn connect(self, url: &str) -> Result<SqliteBackend<C>, Error> {
        let Target { options, memory, location } = parse_url(url)?;
        let options = options.create_if_missing(true).busy_timeout(BUSY_TIMEOUT);
        let options = if memory {
            options
        } else {
            options.journal_mode(SqliteJournalMode::Wal).synchronous(SqliteSynchronous::Normal)
        };
        // The one writer connection; it also keeps an in-memory database alive.
        // No ping before each acquire (sqlx's default): a connection to a
        // file cannot hang up, and the ping is a round trip to the
        // connection's thread in front of every claim, ack and enqueue.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .map_err(|e| open_error(&location, e))?;
        let reader = if memory {
            writer.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(READERS)
                .test_before_acquire(false)
                .connect_lazy_with(options.create_if_missing(false))
        };
        let migrate = self.migrate;
        let backend = self.build(writer, reader, location);
        if migrate {
            backend.migrate().await?;
        }
        Ok(backend)
    }

    /// Uses an existing pool for reads and writes, without migrating: call
    /// [`SqliteBackend::migrate`] once.
    ///
    /// A pool of one connection avoids `SQLITE_BUSY` between this process's
    /// writers, as [`connect`](Self::connect) does. Build it with
    /// `test_before_acquire(false)` too, as `connect` does: by default sqlx
    /// pings a connection on every acquire, a round trip to the
    /// connection's thread before each statement.
    pub fn from_pool(self, pool: SqlitePool) -> SqliteBackend<C> {
        let location = pool.connect_options().get_filename().display().to_string();
        self.build(pool.clone(), pool, location)
    }

    fn build(self, writer: SqlitePool, reader: SqlitePool, location: String) -> SqliteBackend<C> {
        let hand_off = writer.options().get_max_connections() == 1;
        SqliteBackend {
            inner: Arc::new(Inner {
                writer,
                reader,
                notifier: Notifier::new(),
                location,
                retention: crate::retention::Pacing::new(self.tuning.retention),
                put_backs: crate::claim::PutBacks::default(),
                handoffs: Handoffs::default(),
                hand_off,
            }),
            tuning: self.tuning,
            codec: PhantomData,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_and_checked() {
        let memory = parse_url("sqlite::memory:").unwrap_or_else(|e| panic!("{e}"));
        assert!(memory.memory);
        assert_eq!(memory.location, ":memory:");
        let file = parse_url("sqlite://dir/jobs.db").unwrap_or_else(|e| panic!("{e}"));
        assert!(!file.memory);
        assert!(file.location.ends_with("jobs.db"), "{}", file.location);
        for bad in ["postgres://h/db", "sqlite://", "sqlite:"] {
            let err = parse_url(bad).map(|_| ()).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains("sqlite backend") && err.contains(&format!("`{bad}`")), "{bad}: {err}");
        }
    }
}
