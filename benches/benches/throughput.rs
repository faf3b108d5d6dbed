//! Throughput and latency of errand's backends (DESIGN §5).
//!
//! Run with: `cargo bench -p errand-benches -- [--quick] [--backend memory,sqlite] [--drains 2000@64,…] [--out FILE]`
//!
//! Prints a table and writes JSON (default `target/errand-bench.json`).

use std::path::PathBuf;

use errand::memory::MemoryBackend;
use errand_benches::{Measurement, Plan, print_table, run_backend, run_workflows};

#[tokio::main]
async fn main() {
    if let Err(error) = run().await {
        eprintln!("bench failed: {error}");
        std::process::exit(1);
    }
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
            "--bulk" => {
                // Only bulk enqueue.
                plan.single = 0;
                plan.drains.clear();
                plan.latency_samples = 0;
                plan.workflow_runs = 0;
                plan.workflow_samples = 0;
            }
            "--workflows" => {
                // Only the workflow scenarios.
                plan.single = 0;
                plan.bulk = 0;
                plan.drains.clear();
                plan.latency_samples = 0;
            }
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
                plan.single = 0;
                plan.bulk = 0;
                plan.latency_samples = 0;
                plan.workflow_runs = 0;
                plan.workflow_samples = 0;
            }
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
            "sqlite" => {
                let dir = tempfile::tempdir()?;
                let counter = std::sync::atomic::AtomicU64::new(0);
                let dir_path = dir.path().to_owned();
                let make = || {
                    let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let url = format!("sqlite://{}", dir_path.join(format!("bench-{n}.db")).display());
                    async move { errand::sqlite::SqliteBackend::connect(&url).await }
                };
                results.extend(run_backend("sqlite", &plan, make).await?);
                results.extend(run_workflows("sqlite", &plan, make).await?);
            }
            other => return Err(format!("unknown backend `{other}` (expected memory or sqlite)").into()),
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
