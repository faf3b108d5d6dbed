// The README's first example, as a user writes it: it must compile unchanged.
use errand::prelude::*;
use errand::sqlite::SqliteBackend;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MessageId(String);

pub struct Mailer;

impl Mailer {
    pub fn new() -> Self {
        Mailer
    }

    pub async fn send(&self, to: &str, _subject: &str) -> Result<MessageId, std::io::Error> {
        Ok(MessageId(to.to_owned()))
    }
}

#[errand::job(queue = "emails", retries = 5, backoff = "exponential(100ms, max = 1m)", timeout = "30s")]
async fn send_email(to: String, subject: String, mailer: Data<Mailer>) -> Result<MessageId, JobError> {
    mailer.send(&to, &subject).await.map_err(JobError::retry) // `?` on any std error also retries
}

#[allow(dead_code)]
async fn design_main() -> Result<(), errand::Error> {
    let backend = SqliteBackend::connect("sqlite://jobs.db").await?; // creates + migrates
    backend.enqueue(SendEmail { to: "a@b.c".into(), subject: "hi".into() }).await?;
    backend
        .enqueue_with(
            SendEmail::new("x@y.z".into(), "later".into()),
            Enqueue::new().delay(Duration::from_secs(60)).priority(5).unique_key("welcome:x"),
        )
        .await?;

    Monitor::new()
        .register(SendEmail::worker(&backend).data(Mailer::new()).concurrency(8))
        .run() // until Ctrl-C or SIGTERM; then graceful: stop fetching, finish or release in-flight
        .await
}

fn main() {}
