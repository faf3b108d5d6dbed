#[errand::job(cron = "0 */5 * * * *")]
async fn cleanup() {}

fn main() {}
