// Cron jobs: with a `Tick`, without arguments, with injected data, every key.
use std::time::Duration;

use errand::prelude::*;
use errand::sqlite::SqliteBackend;

#[errand::job(queue = "reports", cron = "0 0 6 * * Mon-Fri", timezone = "Europe/Paris", missed = "once")]
async fn daily_report(tick: Tick) -> Result<(), JobError> {
    let _ = tick.time();
    Ok(())
}

#[errand::job(cron = "@hourly", missed = "skip")]
async fn sweep() -> Result<(), JobError> {
    Ok(())
}

struct Store;

#[errand::job(cron = "*/10 * * * * *", missed = "all", retries = 0, timeout = "5s")]
async fn refresh(at: Tick, store: Data<Store>, cx: TaskCx) -> Result<u32, JobError> {
    let _ = (at, store, cx.attempt());
    Ok(1)
}

async fn run(backend: SqliteBackend) -> Result<(), errand::Error> {
    assert_eq!(DailyReport::schedule().timezone_name(), "Europe/Paris");
    Monitor::new()
        .register(DailyReport::worker(&backend))
        .register(Sweep::worker(&backend))
        .register(Refresh::worker(&backend).data(Store))
        .run_until(tokio::time::sleep(Duration::from_millis(1)))
        .await
}

fn main() {
    let _ = run;
}
