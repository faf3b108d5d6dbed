//! Gates the server tests: for each of `ERRAND_POSTGRES_URL`,
//! `ERRAND_REDIS_URL` and `ERRAND_MYSQL_URL` that is unset, sets
//! `cfg(errand_skip_postgres)` (`_redis`, `_mysql`) so that the tests
//! against that server are reported as ignored; under
//! `ERRAND_REQUIRE_SERVICES=1` the build fails instead
//! (`gate_service_tests`).

#[allow(clippy::print_stdout)] // a build script talks to cargo on stdout
fn main() {
    for (var, cfg) in [
        ("ERRAND_POSTGRES_URL", "errand_skip_postgres"),
        ("ERRAND_REDIS_URL", "errand_skip_redis"),
        ("ERRAND_MYSQL_URL", "errand_skip_mysql"),
    ] {
        // Fails the build under ERRAND_REQUIRE_SERVICES=1 when unset, and
        // says which tests are ignored otherwise. (Its own `errand_skip`
        // covers every server at once; the tests use the finer cfgs.)
        errand_runtime::testing::gate_service_tests(var);
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        if !std::env::var(var).is_ok_and(|v| !v.is_empty()) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
