// An unknown timezone is a compile error with the nearest known name.
#[errand::job(cron = "0 0 6 * * Mon-Fri", timezone = "Europe/Pari")]
async fn daily_report() -> Result<(), errand::JobError> {
    Ok(())
}

fn main() {}
