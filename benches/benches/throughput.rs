//! Throughput and latency of errand's backends (see `docs/architecture.md`, "Performance").
//!
//! Run with: `cargo bench -p errand-benches -- [--quick | --bulk | --enqueue | --latency | --workflows] [--backend memory,sqlite] [--drains 2000@64,…] [--out FILE]`
//!
//! `--observe` (with `--features observe`) measures the same plan with
//! tracing-opentelemetry (spans to a discarding batch exporter; every task
//! enqueued inside a span, so each carries and restores a trace context)
//! and the Prometheus metrics recorder installed:
//! `cargo bench -p errand-benches --features observe -- --observe --backend sqlite --drains 20000@64`.
//!
//! Backends: `memory`, `sqlite` (the default pair), `tokio-raw` (with
//! `--latency`: one wake-up of an idle task on the runtime, the floor under
//! the memory backend's enqueue→start), `sqlite-raw` (the SQLite
//! backend's own bulk insert, single insert, claim and ack statements in a
//! bare loop on its own pool), `postgres`, `postgres-raw`
//! (the PostgreSQL backend's own claim and ack statements in bare loops: the
//! baseline for the framework's overhead), `mysql`, `mysql-raw` (likewise for
//! MySQL/MariaDB) and `redis`. The server backends read `ERRAND_POSTGRES_URL`
//! / `ERRAND_MYSQL_URL` / `ERRAND_REDIS_URL` (default: the local servers) and
//! use a fresh schema, table prefix or key prefix per scenario, removed at
//! the end.
//!
//! Prints a table and writes JSON (default `target/errand-bench.json`).

use std::path::PathBuf;

use errand::memory::MemoryBackend;
use errand::mysql::MysqlBackend;
use errand::postgres::PostgresBackend;
use errand::postgres::sqlx;
use errand::redis::RedisBackend;
use errand_benches::{
    Measurement, Part, Plan, latency_across, mysql_raw, postgres_raw, print_table, run_backend, run_workflows,
    sqlite_raw, tokio_raw,
};

#[tokio::main]
async fn main() {
    let observe = std::env::args().any(|a| a == "--observe");
    if let Err(error) = observed(observe).await {
        eprintln!("bench failed: {error}");
        std::process::exit(1);
    }
}

/// [`run`], with tracing and metrics on when `observe`.
#[cfg(feature = "observe")]
async fn observed(observe: bool) -> Result<(), Box<dyn std::error::Error>> {
    use opentelemetry::trace::TracerProvider as _;
    use tracing::Instrument;
    use tracing_subscriber::layer::SubscriberExt;

    /// Drops every span: the cost measured is errand's and the SDK's, not an export's.
    #[derive(Debug)]
    struct Discard;
    impl opentelemetry_sdk::trace::SpanExporter for Discard {
        async fn export(
            &self,
            _batch: Vec<opentelemetry_sdk::trace::SpanData>,
        ) -> opentelemetry_sdk::error::OTelSdkResult {
            Ok(())
        }
    }

    if !observe {
        return run().await;
    }
    // `ERRAND_BENCH_OBSERVE`: which of `otel`, `metrics` (default both), and
    // `lean`: the OTel layer without code locations, thread names and
    // busy/idle times; `nocontext` (below).
    let parts = std::env::var("ERRAND_BENCH_OBSERVE").unwrap_or_else(|_| "otel,metrics".to_owned());
    let has = |part: &str| parts.split(',').any(|p| p.trim() == part);
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().with_batch_exporter(Discard).build();
    if has("otel") {
        let lean = has("lean");
        let layer = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("bench"))
            .with_location(!lean)
            .with_threads(!lean)
            .with_tracked_inactivity(!lean);
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))?;
    }
    if has("metrics") {
        errand::metrics::install()?;
    }
    eprintln!("observing ({parts}): spans to a discarding exporter, trace context on every task, metrics recorded");
    // `nocontext`: enqueue outside any span, so tasks carry no context.
    let outcome = if has("nocontext") { run().await } else { run().instrument(tracing::info_span!("bench")).await };
    let _ = provider.shutdown();
    outcome
}

/// [`run`]; `--observe` needs the `observe` feature.
#[cfg(not(feature = "observe"))]
async fn observed(observe: bool) -> Result<(), Box<dyn std::error::Error>> {
    if observe {
        return Err(
            "--observe needs the bench built with it: cargo bench -p errand-benches --features observe -- --observe"
                .into(),
        );
    }
    run().await
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut plan = Plan::full();
    let mut backends = vec!["memory".to_owned(), "sqlite".to_owned()];
    let mut out = PathBuf::from("target/errand-bench.json");
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--quick" => plan = Plan::quick(),
            "--bulk" => plan = plan.only(&[Part::Bulk]),
            "--enqueue" => plan = plan.only(&[Part::Single, Part::Bulk]),
            "--latency" => plan = plan.only(&[Part::Latency]),
            "--workflows" => plan = plan.only(&[Part::Workflows]),
            "--backend" => {
                i += 1;
                backends = args.get(i).ok_or("--backend needs a list")?.split(',').map(str::to_owned).collect();
            }
            "--drains" => {
                // e.g. `--drains 2000@64,200000@64`: only these drains, nothing else.
                i += 1;
                let spec = args.get(i).ok_or("--drains needs a list like 2000@64,200000@64")?;
                plan.drains = spec
                    .split(',')
                    .map(|d| {
                        let (n, c) = d.split_once('@').ok_or("expected QUEUED@CONCURRENCY")?;
                        Ok((n.parse()?, c.parse()?))
                    })
                    .collect::<Result<_, Box<dyn std::error::Error>>>()?;
                plan = plan.only(&[Part::Drains]);
            }
            "--observe" => {} // handled in `main`
            "--out" => {
                i += 1;
                out = PathBuf::from(args.get(i).ok_or("--out needs a path")?);
            }
            // `cargo bench` passes `--bench`; ignore it and any filter.
            _ => {}
        }
        i += 1;
    }

    let mut results: Vec<Measurement> = Vec::new();
    for backend in &backends {
        eprintln!("{backend}:");
        match backend.as_str() {
            "memory" => {
                results.extend(run_backend("memory", &plan, || async { Ok(MemoryBackend::new()) }).await?);
                results.extend(run_workflows("memory", &plan, || async { Ok(MemoryBackend::new()) }).await?);
            }
            "tokio-raw" => results.extend(tokio_raw("tokio-raw", &plan).await?),
            "sqlite" | "sqlite-raw" => {
                // A fresh database file per scenario, in a directory removed at the end.
                let dir = tempfile::tempdir()?;
                let counter = std::sync::atomic::AtomicU64::new(0);
                let dir_path = dir.path().to_owned();
                let make = || {
                    let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let url = format!("sqlite://{}", dir_path.join(format!("bench-{n}.db")).display());
                    async move { errand::sqlite::SqliteBackend::connect(&url).await }
                };
                if backend == "sqlite" {
                    results.extend(run_backend("sqlite", &plan, make).await?);
                    results.extend(run_workflows("sqlite", &plan, make).await?);
                } else {
                    results.extend(sqlite_raw("sqlite-raw", &plan, make).await?);
                }
            }
            "postgres" | "postgres-raw" => {
                // A fresh schema per scenario, dropped at the end.
                let url = env_url("ERRAND_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test");
                let counter = std::sync::atomic::AtomicU64::new(0);
                let made = std::sync::Mutex::new(Vec::new());
                let make = || {
                    let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let schema = format!("errand_bench_{}_{n}", std::process::id());
                    made.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(schema.clone());
                    let url = url.clone();
                    async move { PostgresBackend::builder().namespace(&schema).connect(&url).await }
                };
                let outcome = if backend == "postgres" {
                    postgres(&url, &plan, make).await
                } else {
                    postgres_raw("pg-raw", &plan, make).await
                };
                let pool = sqlx::PgPool::connect(&url).await?;
                for schema in made.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner) {
                    sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).execute(&pool).await?;
                }
                results.extend(outcome?);
            }
            "mysql" | "mysql-raw" => {
                // A fresh table prefix per scenario, its tables dropped at the end.
                let url = env_url("ERRAND_MYSQL_URL", "mysql://root@127.0.0.1:3306/test");
                let counter = std::sync::atomic::AtomicU64::new(0);
                let made = std::sync::Mutex::new(Vec::new());
                let make = || {
                    let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let prefix = format!("errand_bench_{}_{n}_", std::process::id());
                    made.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(prefix.clone());
                    let url = url.clone();
                    async move { MysqlBackend::builder().namespace(&prefix).connect(&url).await }
                };
                let outcome = if backend == "mysql" {
                    mysql(&url, &plan, make).await
                } else {
                    mysql_raw("mysql-raw", &plan, make).await
                };
                let pool = errand::mysql::sqlx::MySqlPool::connect(&url).await?;
                for prefix in made.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner) {
                    let tables: Vec<String> = [
                        "tasks",
                        "unique_keys",
                        "workers",
                        "served_jobs",
                        "runs",
                        "run_steps",
                        "paused_queues",
                        "schedules",
                        "migrations",
                    ]
                    .iter()
                    .map(|t| format!("`{prefix}{t}`"))
                    .collect();
                    let drop = format!("DROP TABLE IF EXISTS {}", tables.join(", "));
                    errand::mysql::sqlx::query(&drop).execute(&pool).await?;
                }
                results.extend(outcome?);
            }
            "redis" => {
                // A fresh key prefix per scenario, cleared at the end.
                let url = env_url("ERRAND_REDIS_URL", "redis://127.0.0.1:6379");
                let counter = std::sync::atomic::AtomicU64::new(0);
                let made = std::sync::Mutex::new(Vec::new());
                let make = || {
                    let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let url = url.clone();
                    let made = &made;
                    async move {
                        let prefix = format!("errand-bench-{}-{n}:", std::process::id());
                        let backend = RedisBackend::builder().namespace(prefix.clone()).connect(&url).await?;
                        made.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(prefix);
                        Ok(backend)
                    }
                };
                let outcome = match run_backend("redis", &plan, make).await {
                    Ok(mut r) => run_workflows("redis", &plan, make).await.map(|w| {
                        r.extend(w);
                        r
                    }),
                    Err(e) => Err(e),
                };
                for prefix in made.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner) {
                    errand_benches::delete_redis_keys(&url, &prefix).await?;
                }
                results.extend(outcome?);
            }
            other => {
                return Err(format!(
                    "unknown backend `{other}` (expected memory, sqlite, postgres, postgres-raw, mysql, mysql-raw or redis)"
                )
                .into());
            }
        }
    }
    print_table(&results);
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&out, serde_json::to_vec_pretty(&results)?)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

fn env_url(var: &str, default: &str) -> String {
    std::env::var(var).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned())
}

/// The `postgres` scenarios: the plan, the enqueue→start latency across two
/// backend values (two pools, as two processes: woken by NOTIFY), workflows.
async fn postgres<F, Fut>(url: &str, plan: &Plan, make: F) -> Result<Vec<Measurement>, errand::Error>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<PostgresBackend, errand::Error>>,
{
    let mut all = run_backend("postgres", plan, &make).await?;
    if plan.latency_samples > 0 {
        let consumer = make().await?;
        let producer = PostgresBackend::builder().namespace(consumer.namespace()).connect(url).await?;
        all.extend(latency_across("postgres", &consumer, &producer, plan.latency_samples).await?);
    }
    all.extend(run_workflows("postgres", plan, &make).await?);
    Ok(all)
}

/// The `mysql` scenarios: the plan, the enqueue→start latency across two
/// backend values (two pools, as two processes: the idle worker learns of
/// the other's task from its poller), workflows.
async fn mysql<F, Fut>(url: &str, plan: &Plan, make: F) -> Result<Vec<Measurement>, errand::Error>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<MysqlBackend, errand::Error>>,
{
    let mut all = run_backend("mysql", plan, &make).await?;
    if plan.latency_samples > 0 {
        let consumer = make().await?;
        let producer = MysqlBackend::builder().namespace(consumer.namespace()).connect(url).await?;
        all.extend(latency_across("mysql", &consumer, &producer, plan.latency_samples).await?);
    }
    all.extend(run_workflows("mysql", plan, &make).await?);
    Ok(all)
}
