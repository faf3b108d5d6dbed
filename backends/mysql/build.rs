//! Sets `cfg(errand_skip)` when `ERRAND_MYSQL_URL` is unset, so the tests
//! that need a server are reported as ignored (and fails the build instead
//! under `ERRAND_REQUIRE_SERVICES=1`).

fn main() {
    errand_runtime::testing::gate_service_tests("ERRAND_MYSQL_URL");
}
