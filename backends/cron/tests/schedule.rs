//! A real cron expression run by five handles on one store (as five
//! processes would): every second for four seconds, each tick enqueued once.

use std::time::Duration;

use errand_cron::CronSchedule;
use errand_runtime::memory::MemoryBackend;
use errand_runtime::{Expose, Job, JobError, ScheduleExt, TaskCx, TaskFilter, Tick};

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Beat {
    tick: Tick,
}

impl Job for Beat {
    const NAME: &'static str = "beat";
    type Output = ();
    async fn run(self, _cx: TaskCx) -> Result<(), JobError> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_every_second_schedule_fires_each_tick_once_across_five_handles() {
    let store = MemoryBackend::new();
    let handles: Vec<MemoryBackend> = (0..5).map(|_| MemoryBackend::builder().share(&store)).collect();
    let schedule = match CronSchedule::new("* * * * * *") {
        Ok(schedule) => schedule,
        Err(error) => panic!("{error}"),
    };
    let pipes: Vec<_> = handles.iter().map(|h| schedule.clone().pipe_to(h, |tick| Beat { tick })).collect();
    tokio::time::sleep(Duration::from_millis(4300)).await;
    for pipe in pipes {
        let stats = pipe.stop().await;
        assert_eq!(stats.errors, 0, "{stats:?}");
    }
    let tasks = match store.tasks(&TaskFilter { limit: 100, ..TaskFilter::default() }).await {
        Ok(tasks) => tasks,
        Err(error) => panic!("{error}"),
    };
    let mut ticks: Vec<i64> =
        tasks.iter().filter_map(|t| t.unique_key.as_deref()?.rsplit_once('@')?.1.parse().ok()).collect();
    ticks.sort_unstable();
    assert!(ticks.len() >= 4, "four seconds of an every-second schedule gave {} ticks", ticks.len());
    for pair in ticks.windows(2) {
        assert_eq!(pair[1] - pair[0], 1000, "a tick is missing or doubled: {ticks:?}");
    }
}
