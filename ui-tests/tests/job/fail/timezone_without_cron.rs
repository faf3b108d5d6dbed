// `timezone` and `missed` only mean something with a `cron` schedule.
#[errand::job(queue = "reports", timezone = "Europe/Paris")]
async fn report() -> Result<(), errand::JobError> {
    Ok(())
}

fn main() {}
