//! The shared backend conformance suite, run against a fresh SQLite file per case.

use std::sync::{Mutex, PoisonError};

use errand_runtime::Codec;
use errand_runtime::testing::{BackendFactory, TestSettings};
use errand_sqlite::SqliteBackend;
use tempfile::TempDir;

/// Hands out a backend on a new database file per case; the files live as
/// long as the factory (the whole case) and are removed afterwards.
#[derive(Debug, Default)]
struct SqliteFactory {
    dirs: Mutex<Vec<TempDir>>,
}

impl BackendFactory for SqliteFactory {
    type Backend<C: Codec> = SqliteBackend<C>;

    async fn create<C: Codec>(&self, settings: TestSettings) -> SqliteBackend<C> {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        let url = format!("sqlite://{}", dir.path().join("errand.db").display());
        self.dirs.lock().unwrap_or_else(PoisonError::into_inner).push(dir);
        let backend = SqliteBackend::builder().codec::<C>().tuning(|t| settings.apply(t)).connect(&url).await;
        backend.unwrap_or_else(|e| panic!("cannot open {url}: {e}"))
    }

    /// Another handle on the same database file, as a second process opens
    /// it: its own connections, wake-ups and settings.
    async fn reopen<C: Codec>(&self, backend: &SqliteBackend<C>, settings: TestSettings) -> SqliteBackend<C> {
        let url = format!("sqlite://{}", backend.location().display());
        let other = SqliteBackend::builder().codec::<C>().tuning(|t| settings.apply(t)).connect(&url).await;
        other.unwrap_or_else(|e| panic!("cannot open {url} again: {e}"))
    }
}

errand_runtime::conformance_tests! {
    factory: SqliteFactory::default(),
    backend: SqliteBackend,
    capabilities: [transactional, priorities, unique_keys, delays, results, expose, workflows, cancel_running, schedules],
}
