//! From a URL to a backend: which store the scheme names, connecting
//! without migrating, and checking that the schema is there.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use errand_mysql::MysqlBackend;
use errand_postgres::PostgresBackend;
use errand_redis::RedisBackend;
use errand_runtime::Expose;
use errand_runtime::backend::redact_url;
use errand_sqlite::SqliteBackend;

use crate::error::{Failure, Kind};

/// The stores the CLI speaks to, by URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Store {
    /// `sqlite:`
    Sqlite,
    /// `postgres://`, `postgresql://`
    Postgres,
    /// `redis://`, `rediss://`
    Redis,
    /// `mysql://`, `mariadb://`
    Mysql,
}

/// Where to connect: the URL, the store it names, the namespace.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) url: String,
    pub(crate) store: Store,
    pub(crate) namespace: Option<String>,
    /// The URL without its password, for messages.
    pub(crate) shown: String,
}

impl Target {
    /// The target of `url` (from `--url` or `ERRAND_URL`) and `namespace`.
    pub(crate) fn new(url: Option<&str>, namespace: Option<&str>) -> Result<Self, Failure> {
        let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else {
            return Err(Failure::usage(
                "no store given: pass --url URL or set ERRAND_URL (e.g. sqlite://jobs.db, postgres://user@host/db, \
                 redis://127.0.0.1:6379, mysql://user@host/db)",
            ));
        };
        let shown = redact_url(url);
        let store = store_of(url).ok_or_else(|| {
            Failure::usage(format!(
                "`{shown}` is not a URL errand knows: expected sqlite://path/to/jobs.db, postgres://…, \
                 postgresql://…, redis://…, rediss://…, mysql://… or mariadb://…"
            ))
        })?;
        let namespace = namespace.map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned);
        if store == Store::Sqlite && namespace.is_some() {
            return Err(Failure::usage(
                "SQLite has no namespace (a database file is one): drop --namespace / ERRAND_NAMESPACE, or use \
                 another file",
            ));
        }
        Ok(Self { url: url.to_owned(), store, namespace, shown })
    }

    /// Turns an error met while using this store into a [`Failure`].
    pub(crate) fn failure(&self, error: &errand_runtime::Error) -> Failure {
        Failure::from_errand(error, &self.shown)
    }

    /// Turns an error met while connecting into a [`Failure`] that points
    /// at `--url` (a refused login, a missing database…).
    fn connect_failure(&self, error: &errand_runtime::Error) -> Failure {
        let mut failure = self.failure(error);
        if failure.kind == Kind::Backend && !failure.message.contains("check --url") {
            failure.message.push_str("\nhint: check --url (the user, password, host and database it names)");
        }
        failure
    }
}

/// The store a URL's scheme names.
pub(crate) fn store_of(url: &str) -> Option<Store> {
    let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase())?;
    match scheme.as_str() {
        "sqlite" => Some(Store::Sqlite),
        "postgres" | "postgresql" if url.contains("://") => Some(Store::Postgres),
        "redis" | "rediss" if url.contains("://") => Some(Store::Redis),
        "mysql" | "mariadb" if url.contains("://") => Some(Store::Mysql),
        _ => None,
    }
}

/// The file of a SQLite URL, or `None` for an in-memory database.
pub(crate) fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, params) = rest.split_once('?').unwrap_or((rest, ""));
    if path == ":memory:" || path.is_empty() || params.split('&').any(|p| p == "mode=memory") {
        return None;
    }
    Some(PathBuf::from(path))
}

/// A SQLite backend on `target`, not migrated; when `create` is false a
/// missing file is reported (exit 3) instead of being created.
pub(crate) async fn sqlite(target: &Target, create: bool) -> Result<SqliteBackend, Failure> {
    if !create && let Some(file) = sqlite_file(&target.url).filter(|f| !f.exists()) {
        return Err(Failure::new(
            Kind::Behind,
            format!(
                "the SQLite database `{}` does not exist: run `errand migrate` to create it (or check --url)",
                file.display()
            ),
        ));
    }
    SqliteBackend::builder().migrate(false).connect(&target.url).await.map_err(|e| target.connect_failure(&e))
}

/// How long the first TCP connection to a server may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens (and closes) one TCP connection to `host:port` first, so that an
/// unreachable server is reported at once: a driver's pool keeps retrying
/// a refused connection until its acquire timeout. Unix sockets (a host
/// starting with `/`) are left to the driver.
async fn probe(target: &Target, host: &str, port: u16) -> Result<(), Failure> {
    if host.starts_with('/') || host.is_empty() {
        return Ok(());
    }
    let unreachable = |cause: String| {
        Failure::new(
            Kind::Backend,
            format!("could not connect to `{}` — is the server running? check --url\ncause: {cause}", target.shown),
        )
    };
    match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect((host, port))).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(unreachable(format!("{host}:{port}: {e}"))),
        Err(_) => Err(unreachable(format!("{host}:{port} did not answer within {}s", PROBE_TIMEOUT.as_secs()))),
    }
}

/// A PostgreSQL backend on `target`, not migrated.
pub(crate) async fn postgres(target: &Target) -> Result<PostgresBackend, Failure> {
    use errand_postgres::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
    // A URL sqlx cannot read is left to the backend, which says why.
    if let Ok(options) = PgConnectOptions::from_str(&target.url) {
        if let Some(schema) = &target.namespace {
            // The backend checks the schema name without connecting.
            let lazy = PgPoolOptions::new().connect_lazy_with(options.clone());
            PostgresBackend::builder().namespace(schema.clone()).from_pool(lazy).map_err(|e| target.failure(&e))?;
        }
        probe(target, options.get_host(), options.get_port()).await?;
    }
    let mut builder = PostgresBackend::builder().migrate(false);
    if let Some(schema) = &target.namespace {
        builder = builder.namespace(schema.clone());
    }
    builder.connect(&target.url).await.map_err(|e| target.connect_failure(&e))
}

/// A MySQL backend on `target`, not migrated.
pub(crate) async fn mysql(target: &Target) -> Result<MysqlBackend, Failure> {
    use errand_mysql::sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
    if let Ok(options) = MySqlConnectOptions::from_str(&target.url) {
        if let Some(prefix) = &target.namespace {
            // The backend checks the table prefix without connecting.
            let lazy = MySqlPoolOptions::new().connect_lazy_with(options.clone());
            MysqlBackend::builder().namespace(prefix.clone()).from_pool(lazy).map_err(|e| target.failure(&e))?;
        }
        probe(target, options.get_host(), options.get_port()).await?;
    }
    let mut builder = MysqlBackend::builder().migrate(false);
    if let Some(prefix) = &target.namespace {
        builder = builder.namespace(prefix.clone());
    }
    builder.connect(&target.url).await.map_err(|e| target.connect_failure(&e))
}

/// A Redis backend on `target`.
pub(crate) async fn redis(target: &Target) -> Result<RedisBackend, Failure> {
    let mut builder = RedisBackend::builder();
    if let Some(prefix) = &target.namespace {
        builder = builder.namespace(prefix.clone());
    }
    builder.connect(&target.url).await.map_err(|e| target.connect_failure(&e))
}

/// Checks, before a command other than `migrate`, that the schema is
/// there and current: `pending` is what the backend reports pending. When
/// migrations are pending, a read tells whether the tables are missing
/// altogether or only behind (both exit 3, naming `errand migrate`).
pub(crate) async fn ensure_current<B: Expose>(
    target: &Target,
    backend: &B,
    pending: Result<Vec<String>, errand_runtime::Error>,
) -> Result<(), Failure> {
    let pending = pending.map_err(|e| target.failure(&e))?;
    if pending.is_empty() {
        return Ok(());
    }
    match backend.counts().await {
        Err(e) if crate::error::is_missing_table(&e) => Err(Failure::missing_tables()),
        _ => Err(Failure::new(
            Kind::Behind,
            format!(
                "the errand schema is behind this `errand` ({} pending: {}): run `errand migrate`",
                plural(pending.len(), "migration"),
                pending.join(", ")
            ),
        )),
    }
}

/// `n thing` or `n things`.
pub(crate) fn plural(n: usize, thing: &str) -> String {
    if n == 1 { format!("1 {thing}") } else { format!("{n} {thing}s") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_name_stores() {
        assert_eq!(store_of("sqlite://jobs.db"), Some(Store::Sqlite));
        assert_eq!(store_of("sqlite:jobs.db"), Some(Store::Sqlite));
        assert_eq!(store_of("postgres://h/db"), Some(Store::Postgres));
        assert_eq!(store_of("postgresql://h/db"), Some(Store::Postgres));
        assert_eq!(store_of("redis://h"), Some(Store::Redis));
        assert_eq!(store_of("rediss://h"), Some(Store::Redis));
        assert_eq!(store_of("mysql://h/db"), Some(Store::Mysql));
        assert_eq!(store_of("mariadb://h/db"), Some(Store::Mysql));
        assert_eq!(store_of("jobs.db"), None);
        assert_eq!(store_of("http://h"), None);
        assert_eq!(store_of("postgres:h"), None);
    }

    #[test]
    fn targets_are_checked() {
        let missing =
            Target::new(None, None).err().map(|f| (f.kind, f.message)).unwrap_or((Kind::Backend, String::new()));
        assert_eq!(missing.0, Kind::Usage);
        assert!(missing.1.contains("--url") && missing.1.contains("ERRAND_URL"), "{}", missing.1);
        let bad = Target::new(Some("ftp://u:secret@h"), None).err().map(|f| f.message).unwrap_or_default();
        assert!(bad.contains("not a URL errand knows") && !bad.contains("secret"), "{bad}");
        assert!(Target::new(Some("sqlite://a.db"), Some("x")).is_err());
        assert!(Target::new(Some("postgres://h/db"), Some("jobs")).is_ok());
    }

    #[test]
    fn sqlite_files() {
        assert_eq!(sqlite_file("sqlite://dir/jobs.db"), Some(PathBuf::from("dir/jobs.db")));
        assert_eq!(sqlite_file("sqlite:///abs/jobs.db?mode=rwc"), Some(PathBuf::from("/abs/jobs.db")));
        assert_eq!(sqlite_file("sqlite:jobs.db"), Some(PathBuf::from("jobs.db")));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
    }
}
