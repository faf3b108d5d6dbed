// A cron expression is parsed when the job compiles: a typo is an error at the expression.
#[errand::job(cron = "0 0 25 * * *")]
async fn nightly() -> Result<(), errand::JobError> {
    Ok(())
}

fn main() {}
