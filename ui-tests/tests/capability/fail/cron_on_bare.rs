//! A cron job's worker on a backend without `Schedules` (unique keys and a
//! stored last tick) does not compile: a schedule there could fire a tick
//! once per process.

use errand::prelude::*;
use errand_runtime::testing::Bare;

#[errand::job(cron = "0 */5 * * * *")]
async fn cleanup(tick: Tick) -> Result<(), errand::JobError> {
    let _ = tick;
    Ok(())
}

fn workers(backend: &Bare) {
    let _ = Cleanup::worker(backend);
}

fn main() {}
