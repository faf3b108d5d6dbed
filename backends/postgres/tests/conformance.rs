//! The PostgreSQL backend against the shared conformance suite. Each case gets
//! a fresh schema `errand_test_<time>_<random>`; schemas of earlier runs more
//! than an hour old are dropped.

mod common;

use errand_postgres::PostgresBackend;
use errand_runtime::Codec;
use errand_runtime::testing::{BackendFactory, TestSettings};

struct Postgres;

impl BackendFactory for Postgres {
    type Backend<C: Codec> = PostgresBackend<C>;

    async fn create<C: Codec>(&self, settings: TestSettings) -> PostgresBackend<C> {
        let url = common::url().unwrap_or_default();
        common::backend(&url)
            .await
            .with_codec::<C>()
            .orphan_after(settings.orphan_after)
            .poll_interval(settings.poll_interval)
    }

    fn available(&self) -> bool {
        common::url().is_some()
    }
}

errand_runtime::conformance_tests!(Postgres);

errand_runtime::workflow_conformance_tests!(Postgres);
