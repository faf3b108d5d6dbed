//! Every attribute key at once; `main` checks what they turned into.

use errand::prelude::*;

#[errand::job(
    name = "emails.send",
    queue = "emails",
    retries = 5,
    backoff = "exponential(100ms, factor = 3, max = 10m, jitter)",
    timeout = "1m30s",
    priority = -7,
    unique = "welcome:{to}:{{literal}}",
    unique_for = "1h",
)]
pub async fn send_email(to: String, subject: String, attempt_limit: Option<u32>) -> Result<u64, JobError> {
    Ok(to.len() as u64 + subject.len() as u64 + u64::from(attempt_limit.unwrap_or(0)))
}

fn main() {
    let job = SendEmail::new("a@b.c".to_owned(), "hi".to_owned(), Some(1));
    let SendEmail { to, subject, attempt_limit } = job.clone();
    assert_eq!((to.as_str(), subject.as_str(), attempt_limit), ("a@b.c", "hi", Some(1)));
    assert_eq!(format!("{job:?}"), r#"SendEmail { to: "a@b.c", subject: "hi", attempt_limit: Some(1) }"#);

    assert_eq!(SendEmail::NAME, "emails.send");
    assert_eq!(SendEmail::QUEUE, "emails");
    let options = SendEmail::options();
    assert_eq!(options.retries, 5);
    assert_eq!(
        options.backoff,
        errand::Backoff::exponential(Duration::from_millis(100)).factor(3.0).max(Duration::from_secs(600)).jitter(true)
    );
    assert_eq!(options.timeout, Some(Duration::from_secs(90)));
    assert_eq!(options.priority, -7);
    assert_eq!(options.unique_for, Some(Duration::from_secs(3600)));
    assert_eq!(job.unique_key().as_deref(), Some("emails.send:welcome:a@b.c:{literal}"));

    // `Output` comes from the return type.
    let _: Option<<SendEmail as Job>::Output> = Some(7_u64);
}
