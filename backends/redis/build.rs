//! Gates the tests that need a Redis server on `ERRAND_REDIS_URL`: without
//! it they are reported as ignored (and under `ERRAND_REQUIRE_SERVICES=1`
//! the build fails instead).

fn main() {
    errand_runtime::testing::gate_service_tests("ERRAND_REDIS_URL");
}
