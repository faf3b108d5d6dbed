//! `errand bench --backend B [--n N]`: the bench harness's (errand-benches)
//! enqueue and drain scenarios for one backend, with a progress bar while
//! they run and a table at the end.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use errand_benches::{Measurement, Plan, run_backend};
use errand_mysql::MysqlBackend;
use errand_postgres::PostgresBackend;
use errand_redis::RedisBackend;
use errand_runtime::memory::MemoryBackend;
use errand_runtime::{Backend, Error, Expose};
use errand_sqlite::SqliteBackend;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use crate::args::{BenchArgs, BenchBackend};
use crate::connect::{Store, Target};
use crate::error::{Failure, Kind};
use crate::output::{Align, Output, Table};

/// Largest enqueue call of the scenarios.
const CHUNK: u64 = 10_000;

/// One scenario: a plan of the harness with a single part switched on.
fn scenarios(n: u64) -> Vec<(String, Plan)> {
    let empty = Plan {
        single: 0,
        bulk: 0,
        bulk_chunk: CHUNK.min(n),
        drains: Vec::new(),
        latency_samples: 0,
        workflow_runs: 0,
        workflow_samples: 0,
    };
    let mut out = vec![(format!("enqueue {n} (bulk)"), Plan { bulk: n, ..empty.clone() })];
    for concurrency in [16, 64] {
        out.push((format!("drain {n} @{concurrency}"), Plan { drains: vec![(n, concurrency)], ..empty.clone() }));
    }
    out
}

/// `errand bench`.
pub(crate) async fn bench(args: &BenchArgs, url: Option<&str>) -> Result<Output, Failure> {
    let name = args.backend.name();
    let server = match args.backend {
        BenchBackend::Memory | BenchBackend::Sqlite => None,
        BenchBackend::Postgres => Some(Store::Postgres),
        BenchBackend::Mysql => Some(Store::Mysql),
        BenchBackend::Redis => Some(Store::Redis),
    };
    let target = match server {
        None => None,
        Some(store) => {
            let target = Target::new(url, None).map_err(|f| {
                Failure::usage(format!("{}\n(`errand bench --backend {name}` measures the server at --url)", f.message))
            })?;
            if target.store != store {
                return Err(Failure::usage(format!(
                    "`errand bench --backend {name}` needs a {name} URL in --url, not `{}`",
                    target.shown
                )));
            }
            Some(target)
        }
    };

    let plans = scenarios(args.n);
    let bar = progress(plans.len() as u64, name);
    let made = Mutex::new(Vec::<String>::new());
    let counter = AtomicU64::new(0);
    let next = || counter.fetch_add(1, Ordering::Relaxed);
    let remember = |namespace: &str| made.lock().unwrap_or_else(PoisonError::into_inner).push(namespace.to_owned());
    let pid = std::process::id();

    let outcome = match (args.backend, &target) {
        (BenchBackend::Memory, _) => run_all(name, &plans, &bar, || async { Ok(MemoryBackend::new()) }).await,
        (BenchBackend::Sqlite, _) => {
            let dir = tempfile::tempdir()
                .map_err(|e| Failure::new(Kind::Backend, format!("cannot create a temporary directory: {e}")))?;
            let make = || {
                let url = format!("sqlite://{}", dir.path().join(format!("bench-{}.db", next())).display());
                async move { SqliteBackend::connect(&url).await }
            };
            run_all(name, &plans, &bar, make).await
        }
        (BenchBackend::Postgres, Some(target)) => {
            let make = || {
                let schema = format!("errand_bench_{pid}_{}", next());
                remember(&schema);
                let url = target.url.clone();
                async move { PostgresBackend::builder().namespace(schema).connect(&url).await }
            };
            run_all(name, &plans, &bar, make).await
        }
        (BenchBackend::Mysql, Some(target)) => {
            let make = || {
                let prefix = format!("errand_bench_{pid}_{}_", next());
                remember(&prefix);
                let url = target.url.clone();
                async move { MysqlBackend::builder().namespace(prefix).connect(&url).await }
            };
            run_all(name, &plans, &bar, make).await
        }
        (BenchBackend::Redis, Some(target)) => {
            let make = || {
                let prefix = format!("errand-bench-{pid}-{}:", next());
                remember(&prefix);
                let url = target.url.clone();
                async move { RedisBackend::builder().namespace(prefix).connect(&url).await }
            };
            run_all(name, &plans, &bar, make).await
        }
        (_, None) => Err(Failure::usage(format!("`errand bench --backend {name}` needs --url"))),
    };
    bar.finish_and_clear();

    // Remove what the scenarios made, whether they passed or not.
    let made = made.into_inner().unwrap_or_else(PoisonError::into_inner);
    if let Some(target) = &target
        && let Err(e) = clean_up(target, &made).await
    {
        eprintln!("warning: could not remove the bench's namespaces ({}): {}", made.join(", "), target.failure(&e));
    }
    let results = outcome?;

    let mut table = Table::new(&[
        ("backend", Align::Left),
        ("scenario", Align::Left),
        ("value", Align::Right),
        ("unit", Align::Left),
    ]);
    for m in &results {
        table.row(vec![m.backend.clone(), m.scenario.clone(), format!("{:.1}", m.value), m.unit.to_owned()]);
    }
    let json = json!({ "backend": name, "n": args.n, "results": results });
    Ok(Output::new(table.render(), json))
}

/// A bar over the scenarios on stderr (hidden when stderr is not a terminal).
fn progress(len: u64, backend: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {prefix} [{bar:20}] {pos}/{len} {msg} ({elapsed})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(backend.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Runs each scenario with a fresh backend from `make`, advancing `bar`;
/// Ctrl-C stops between (or during) scenarios, so the caller still cleans up.
async fn run_all<B, F, Fut>(
    name: &str,
    plans: &[(String, Plan)],
    bar: &ProgressBar,
    make: F,
) -> Result<Vec<Measurement>, Failure>
where
    B: Backend + Expose,
    F: Fn() -> Fut,
    Fut: Future<Output = Result<B, Error>>,
{
    let mut results = Vec::new();
    for (label, plan) in plans {
        bar.set_message(label.clone());
        let scenario = run_backend(name, plan, &make);
        let measured = tokio::select! {
            measured = scenario => measured,
            _ = tokio::signal::ctrl_c() => {
                return Err(Failure::new(Kind::Backend, "interrupted: the bench stopped (its namespaces are removed)"));
            }
        };
        let measured = measured
            .map_err(|e| Failure::from_errand(&e, name).with_context(&format!("bench scenario `{label}` failed")))?;
        results.extend(measured);
        bar.inc(1);
    }
    Ok(results)
}

/// Drops the schemas, tables or keys the scenarios made on a server.
async fn clean_up(target: &Target, made: &[String]) -> Result<(), Error> {
    match target.store {
        Store::Postgres => {
            use errand_postgres::sqlx;
            let pool = sqlx::PgPool::connect(&target.url)
                .await
                .map_err(|e| errand_runtime::BackendError::new("postgres", "connect to clean up", e))?;
            for schema in made {
                sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                    .execute(&pool)
                    .await
                    .map_err(|e| errand_runtime::BackendError::new("postgres", format!("drop schema `{schema}`"), e))?;
            }
            pool.close().await;
        }
        Store::Mysql => {
            use errand_mysql::sqlx;
            let pool = sqlx::MySqlPool::connect(&target.url)
                .await
                .map_err(|e| errand_runtime::BackendError::new("mysql", "connect to clean up", e))?;
            for prefix in made {
                drop_mysql_tables(&pool, prefix).await?;
            }
            pool.close().await;
        }
        Store::Redis => {
            for prefix in made {
                errand_benches::delete_redis_keys(&target.url, prefix).await?;
            }
        }
        Store::Sqlite => {}
    }
    Ok(())
}

/// Drops every table of the current database whose name starts with `prefix`.
pub(crate) async fn drop_mysql_tables(pool: &errand_mysql::sqlx::MySqlPool, prefix: &str) -> Result<(), Error> {
    use errand_mysql::sqlx;
    let failed = |e: sqlx::Error| {
        Error::from(errand_runtime::BackendError::new("mysql", format!("drop the tables of `{prefix}`"), e))
    };
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
         WHERE table_schema = DATABASE() AND LEFT(table_name, CHAR_LENGTH(?)) = ?",
    )
    .bind(prefix)
    .bind(prefix)
    .fetch_all(pool)
    .await
    .map_err(failed)?;
    if names.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = names.iter().map(|n| format!("`{}`", n.replace('`', "``"))).collect();
    sqlx::query(&format!("DROP TABLE IF EXISTS {}", list.join(", "))).execute(pool).await.map_err(failed)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_enqueue_then_drain_at_16_and_64() {
        let plans = scenarios(3000);
        let labels: Vec<&str> = plans.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(labels, ["enqueue 3000 (bulk)", "drain 3000 @16", "drain 3000 @64"]);
        assert_eq!(plans[0].1.bulk, 3000);
        assert!(plans[0].1.drains.is_empty() && plans[0].1.single == 0);
        assert_eq!(plans[2].1.drains, vec![(3000, 64)]);
        assert_eq!(plans[1].1.bulk_chunk, 3000);
    }
}
