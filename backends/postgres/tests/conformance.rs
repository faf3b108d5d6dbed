//! The PostgreSQL backend against the shared conformance suite. Each case gets
//! a fresh schema `errand_test_<time>_<random>`, dropped when the case ends;
//! schemas of earlier runs more than an hour old (a run that was killed) are
//! dropped too.

mod common;

use std::sync::Mutex;

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
        let url = common::url().unwrap_or_default();
        let backend = common::backend(&url).await;
        let guard = common::DropSchema { url, schema: backend.schema_name().to_owned() };
        self.schemas.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(guard);
        backend.with_codec::<C>().orphan_after(settings.orphan_after).poll_interval(settings.poll_interval)
    }

    fn available(&self) -> bool {
        common::url().is_some()
    }
}

errand_runtime::conformance_tests!(Postgres::new());

errand_runtime::workflow_conformance_tests!(Postgres::new());
