//! The MySQL backend against the shared conformance suite. Each case gets
//! fresh tables, prefixed `et_<time>_<random>_`, dropped when the case ends;
//! tables of earlier runs more than an hour old (a run that was killed) are
//! dropped too. Without `ERRAND_MYSQL_URL` every case is reported as ignored
//! (the build script sets `errand_skip`).

mod common;

use std::sync::{Mutex, PoisonError};

use errand_mysql::MysqlBackend;
use errand_runtime::Codec;
use errand_runtime::testing::{BackendFactory, TestSettings};

struct Mysql {
    /// The tables this case created: the factory value lives as long as one
    /// case, so they are dropped when it ends.
    tables: Mutex<Vec<common::DropTables>>,
}

impl Mysql {
    fn new() -> Self {
        Mysql { tables: Mutex::new(Vec::new()) }
    }
}

impl BackendFactory for Mysql {
    type Backend<C: Codec> = MysqlBackend<C>;

    async fn create<C: Codec>(&self, settings: TestSettings) -> MysqlBackend<C> {
        let url = common::url();
        let prefix = common::fresh_prefix();
        let guard = common::DropTables { url: url.clone(), prefix: prefix.clone() };
        self.tables.lock().unwrap_or_else(PoisonError::into_inner).push(guard);
        common::backend_in(&url, &prefix, |b| b.codec::<C>().tuning(|t| settings.apply(t))).await
    }

    /// Another backend value on the same tables, with a pool of its own (as
    /// another process would have) and `settings`.
    async fn reopen<C: Codec>(&self, backend: &MysqlBackend<C>, settings: TestSettings) -> MysqlBackend<C> {
        common::backend_in(&common::url(), backend.namespace(), |b| b.codec::<C>().tuning(|t| settings.apply(t))).await
    }
}

errand_runtime::conformance_tests! {
    factory: Mysql::new(),
    backend: MysqlBackend,
    capabilities: [transactional, priorities, unique_keys, delays, results, expose, workflows, cancel_running, schedules],
    skip: (errand_skip, "set ERRAND_MYSQL_URL to run against a server"),
}
