// The classic five-field form is missing errand's seconds field: the error says what to write.
#[errand::job(cron = "*/5 * * * *")]
async fn every_five_minutes() -> Result<(), errand::JobError> {
    Ok(())
}

fn main() {}
