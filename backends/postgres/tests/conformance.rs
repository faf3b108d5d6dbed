//! The PostgreSQL backend against the shared conformance suite. Each case gets
//! a fresh schema `errand_test_<time>_<random>`, dropped when the case ends;
//! schemas of earlier runs more than an hour old (a run that was killed) are
//! dropped too. Without `ERRAND_POSTGRES_URL` every case is reported as
//! ignored (the build script sets `errand_skip`).

mod common;

use std::sync::{Mutex, PoisonError};

use errand_postgres::PostgresBackend;
use errand_runtime::Codec;
use errand_runtime::testing::{BackendFactory, TestSettings};

struct Postgres {
    /// The schemas this case created: the factory value lives as long as one
    /// case, so they are dropped when it ends.
    schemas: Mutex<Vec<common::DropSchema>>,
}

impl Postgres {
    fn new() -> Self {
        Postgres { schemas: Mutex::new(Vec::new()) }
    }
}

impl BackendFactory for Postgres {
    type Backend<C: Codec> = PostgresBackend<C>;

    async fn create<C: Codec>(&self, settings: TestSettings) -> PostgresBackend<C> {
        let url = common::url();
        let schema = common::fresh_schema();
        let guard = common::DropSchema { url: url.clone(), schema: schema.clone() };
        self.schemas.lock().unwrap_or_else(PoisonError::into_inner).push(guard);
        common::backend_in(&url, &schema, |b| b.codec::<C>().tuning(|t| settings.apply(t))).await
    }

    /// Another backend value on the same schema, with a pool of its own (as
    /// another process would have) and `settings`.
    async fn reopen<C: Codec>(&self, backend: &PostgresBackend<C>, settings: TestSettings) -> PostgresBackend<C> {
        common::attach(&common::url(), backend, |b| b.codec::<C>().tuning(|t| settings.apply(t))).await
    }
}

errand_runtime::conformance_tests! {
    factory: Postgres::new(),
    backend: PostgresBackend,
    capabilities: [transactional, priorities, unique_keys, delays, results, expose, workflows, cancel_running, schedules],
    skip: (errand_skip, "set ERRAND_POSTGRES_URL to run against a server"),
}
