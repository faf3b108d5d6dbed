//! What can go wrong, each with its exit code and what to do about it.

use std::error::Error as _;
use std::fmt;
use std::process::ExitCode;

use errand_runtime::Error;

/// Why a command failed; each kind has its own [exit code](Failure::code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The backend or the server failed (unreachable, refused, a query
    /// failed): exit 1.
    Backend,
    /// The command line or the configuration is wrong (a bad URL, no
    /// `--url`): exit 2.
    Usage,
    /// The schema is behind: the tables are missing or migrations are
    /// pending (`errand migrate` fixes it): exit 3.
    Behind,
    /// The task or run asked for does not exist: exit 4.
    NotFound,
}

/// A failed command: what went wrong, said so that the reader knows what
/// to do, and its [`Kind`].
#[derive(Debug, Clone)]
pub struct Failure {
    /// Its kind, which decides the exit code.
    pub kind: Kind,
    /// The message printed on stderr.
    pub message: String,
}

impl Failure {
    /// A failure of `kind` saying `message`.
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }

    /// A usage or configuration error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Kind::Usage, message)
    }

    /// Something that does not exist (exit 4).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Kind::NotFound, message)
    }

    /// The tables are missing (exit 3).
    pub fn missing_tables() -> Self {
        Self::new(Kind::Behind, "the errand tables are missing: run `errand migrate`")
    }

    /// This failure with `context` (what was being done) before its message.
    #[must_use]
    pub fn with_context(mut self, context: &str) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// The process exit code: 1 backend, 2 usage, 3 behind, 4 not found.
    pub fn code(&self) -> u8 {
        match self.kind {
            Kind::Backend => 1,
            Kind::Usage => 2,
            Kind::Behind => 3,
            Kind::NotFound => 4,
        }
    }

    /// [`code`](Self::code) as an [`ExitCode`].
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code())
    }

    /// Classifies an error of the runtime or a backend met while talking to
    /// the store at `location` (the URL without its password): configuration
    /// errors are usage errors, missing tables say to migrate, a server that
    /// cannot be reached says so and to check `--url`; anything else is a
    /// backend error with the backend's own message.
    pub fn from_errand(error: &Error, location: &str) -> Self {
        match error {
            Error::Config(message) => Self::usage(format!("{message}\nhint: check --url and --namespace")),
            Error::Schema(message) => Self::new(
                Kind::Backend,
                format!(
                    "{message}\nhint: the schema does not fit this `errand` binary: use the errand version that migrated it"
                ),
            ),
            _ if is_missing_table(error) => Self::missing_tables(),
            _ if is_unreachable(error) => Self::new(
                Kind::Backend,
                format!(
                    "could not connect to `{location}` — is the server running? check --url\ncause: {}",
                    chain(error)
                ),
            ),
            _ => Self::new(Kind::Backend, chain(error)),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// The error and its sources, joined with `: ` where a source adds
/// something its parent's message does not already say.
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

/// The `sqlx` error inside a backend error, if that is what it wraps.
fn sqlx_error(error: &Error) -> Option<&errand_sqlite::sqlx::Error> {
    let Error::Backend(backend) = error else { return None };
    backend.source.downcast_ref::<errand_sqlite::sqlx::Error>()
}

/// The `redis` error inside a backend error, if that is what it wraps.
fn redis_error(error: &Error) -> Option<&redis::RedisError> {
    let Error::Backend(backend) = error else { return None };
    backend.source.downcast_ref::<redis::RedisError>()
}

/// Whether `error` is a query on a table (or a PostgreSQL schema) that does
/// not exist: SQLite's "no such table", PostgreSQL's `42P01`/`3F000`,
/// MySQL's `42S02` (1146).
pub(crate) fn is_missing_table(error: &Error) -> bool {
    if let Some(errand_sqlite::sqlx::Error::Database(db)) = sqlx_error(error) {
        let code = db.code();
        if matches!(code.as_deref(), Some("42P01" | "3F000" | "42S02" | "1146")) {
            return true;
        }
        let message = db.message();
        return message.contains("no such table")
            || (message.contains("doesn't exist") && message.contains("Table"))
            || (message.contains("relation") && message.contains("does not exist"));
    }
    let text = chain(error);
    text.contains("no such table")
}

/// Whether `error` means the server could not be reached at all (refused,
/// timed out, name not resolved), as opposed to a failure it reported.
pub(crate) fn is_unreachable(error: &Error) -> bool {
    if let Some(sqlx) = sqlx_error(error) {
        return matches!(
            sqlx,
            errand_sqlite::sqlx::Error::Io(_)
                | errand_sqlite::sqlx::Error::PoolTimedOut
                | errand_sqlite::sqlx::Error::Tls(_)
                | errand_sqlite::sqlx::Error::PoolClosed
        );
    }
    if let Some(redis) = redis_error(error) {
        return redis.is_connection_refusal()
            || redis.is_connection_dropped()
            || redis.is_timeout()
            || redis.is_io_error();
    }
    // Anything else that failed on an I/O error underneath.
    let mut source: Option<&(dyn std::error::Error + 'static)> = error.source();
    while let Some(cause) = source {
        if cause.downcast_ref::<std::io::Error>().is_some() {
            return true;
        }
        source = cause.source();
    }
    false
}
