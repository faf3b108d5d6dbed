// A cron job's tasks are made by its schedule: it cannot take stored arguments other than a `Tick`.
use errand::Tick;

#[errand::job(cron = "0 0 6 * * *")]
async fn daily_report(tick: Tick, recipient: String) -> Result<(), errand::JobError> {
    let _ = (tick, recipient);
    Ok(())
}

fn main() {}
