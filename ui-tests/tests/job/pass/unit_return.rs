//! Jobs that return nothing, `()`, or `Result<(), E>` with `E: Into<JobError>`.

use errand::Job;
use errand::JobError;

#[errand::job]
async fn ping() {}

#[errand::job]
async fn pong(_n: u8) -> () {}

#[derive(Debug)]
struct Failed;

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("failed")
    }
}

impl std::error::Error for Failed {}

#[errand::job]
async fn flaky(fail: bool) -> Result<(), Failed> {
    if fail { Err(Failed) } else { Ok(()) }
}

#[errand::job]
async fn aborting() -> Result<(), JobError> {
    Err(JobError::abort("no"))
}

fn main() {
    let _: <Ping as Job>::Output = ();
    let _: <Pong as Job>::Output = ();
    let _: <Flaky as Job>::Output = ();
    let _: <Aborting as Job>::Output = ();
    assert_eq!(Ping::NAME, "ping");
    assert_eq!(Ping::QUEUE, "default");
    assert_eq!(Ping::options(), errand::JobOptions::DEFAULT);
    assert_eq!(Ping::new().unique_key(), None);
    let _ = (Pong::new(1), Flaky::new(true), Aborting::new());
}
