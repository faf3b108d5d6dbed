// `missed` is one of skip, once or all.
#[errand::job(cron = "0 0 * * * *", missed = "twice")]
async fn hourly() -> Result<(), errand::JobError> {
    Ok(())
}

fn main() {}
