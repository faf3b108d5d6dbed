//! The ack flusher: writes finished runs' outcomes in batches, in the
//! background, and never lets one bad ack hold up the others.
//!
//! A batch that fails is kept aside and retried with backoff while new acks
//! keep flowing. While the backend shows no sign of life (no heartbeat or
//! other ack went through since), a failure is an outage: the batch is only
//! retried. Once the backend answers other calls, a batch that still fails
//! is split in halves until the ack that fails is alone; that ack is then
//! recorded in a smaller form — an output that cannot be stored becomes a
//! `dead` outcome saying so, an error message is cut short — and, if even
//! that fails, retried on its own with backoff, holding up nothing.
//!
//! Acks held aside are bounded: past [`HELD_MAX`], the flusher stops taking
//! new acks, so a long outage slows the runs (their slots are held until
//! their ack is queued) instead of growing memory.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Event;
use super::shared::{ACK_BATCH, MAX_ERROR_BACKOFF, MIN_ERROR_BACKOFF, Shared};
use crate::backend::{Ack, Backend, Outcome};

/// Acks held aside at most before new ones wait.
const HELD_MAX: usize = 4 * ACK_BATCH;
/// Failures (with the backend answering meanwhile) before a batch is split.
const SPLIT_AFTER: u32 = 2;
/// Failures (with the backend answering meanwhile) before a lone ack is
/// recorded in its smaller form.
const SHRINK_AFTER: u32 = 3;
/// How much of an error message a shrunk ack keeps.
const SHRUNK_ERROR: usize = 1024;

/// A batch that failed, waiting for its next try.
#[derive(Debug)]
struct Held {
    acks: Vec<Ack>,
    failures: u32,
    retry_at: Instant,
    /// The backend's successful calls when it last failed: more since means
    /// the backend answers, so this failure is about the batch itself.
    successes: u64,
    /// Its lone ack was already shrunk.
    shrunk: bool,
    last_error: String,
}

/// Writes acks in batches until told to stop, then drains what is queued.
pub(super) async fn flush_loop<B: Backend>(
    shared: Arc<Shared<B>>,
    mut rx: mpsc::Receiver<Ack>,
    stop: CancellationToken,
    kill: CancellationToken,
) {
    let mut held: Vec<Held> = Vec::new();
    let mut batch = Vec::with_capacity(ACK_BATCH);
    let mut closed = false;
    let mut stopping = false;
    loop {
        let waiting: usize = held.iter().map(|h| h.acks.len()).sum();
        let room = HELD_MAX.saturating_sub(waiting).min(ACK_BATCH);
        let next_retry = held.iter().map(|h| h.retry_at).min();
        tokio::select! {
            biased;
            () = kill.cancelled() => return,
            () = stop.cancelled(), if !stopping => {
                stopping = true;
                rx.close();
            }
            () = sleep_until(next_retry), if next_retry.is_some() => {
                retry_due(&shared, &mut held).await;
            }
            received = rx.recv_many(&mut batch, room), if !closed && room > 0 => {
                if received == 0 {
                    closed = true;
                } else {
                    let acks = std::mem::take(&mut batch);
                    if let Err(failed) = flush(&shared, acks).await {
                        held.push(failed);
                    }
                }
            }
        }
        if closed && held.is_empty() {
            return;
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One try of `acks`; the batch back, marked failed, when it fails.
async fn flush<B: Backend>(shared: &Shared<B>, acks: Vec<Ack>) -> Result<(), Held> {
    shared.flushing(&acks);
    match shared.backend.ack(&shared.registration, &acks).await {
        Ok(()) => {
            shared.meters.acked(acks.len());
            shared.flushed(&acks);
            shared.liveness.succeeded();
            Ok(())
        }
        Err(error) => {
            tracing::warn!(worker = %shared.registration.id, %error, acks = acks.len(), "ack failed; retrying");
            shared.emit(|| Event::BackendError { error: error.to_string() });
            Err(Held {
                acks,
                failures: 1,
                retry_at: Instant::now() + MIN_ERROR_BACKOFF,
                successes: shared.liveness.successes(),
                shrunk: false,
                last_error: error.to_string(),
            })
        }
    }
}

/// Tries again every held batch that is due; splits or shrinks those that
/// keep failing while the backend answers other calls.
async fn retry_due<B: Backend>(shared: &Shared<B>, held: &mut Vec<Held>) {
    let now = Instant::now();
    let (due, later): (Vec<Held>, Vec<Held>) = std::mem::take(held).into_iter().partition(|h| h.retry_at <= now);
    *held = later;
    for entry in due {
        let Held { acks, failures, successes, shrunk, .. } = entry;
        let Err(mut failed) = flush(shared, acks).await else { continue };
        let answering = shared.liveness.successes() > successes;
        failed.failures = if answering { failures + 1 } else { failures };
        failed.shrunk = shrunk;
        let pause = MIN_ERROR_BACKOFF.saturating_mul(1 << failures.min(7)).min(MAX_ERROR_BACKOFF);
        failed.retry_at = Instant::now() + pause;
        if !answering {
            // Likely an outage: keep the batch whole and wait.
            held.push(failed);
        } else if failed.acks.len() > 1 && failed.failures >= SPLIT_AFTER {
            let second = failed.acks.split_off(failed.acks.len() / 2);
            let retry_at = Instant::now();
            held.push(Held { failures: 0, retry_at, ..failed });
            held.push(Held {
                acks: second,
                failures: 0,
                retry_at,
                successes: shared.liveness.successes(),
                shrunk: false,
                last_error: String::new(),
            });
        } else if failed.acks.len() == 1 && failed.failures >= SHRINK_AFTER && !failed.shrunk {
            for ack in &mut failed.acks {
                tracing::error!(
                    worker = %shared.registration.id,
                    task = %ack.id,
                    error = %failed.last_error,
                    "the backend keeps refusing this task's outcome; recording it in a smaller form"
                );
                ack.outcome = shrink(&ack.outcome, &failed.last_error);
            }
            failed.shrunk = true;
            failed.retry_at = Instant::now();
            held.push(failed);
        } else {
            held.push(failed);
        }
    }
}

/// The smaller form of an outcome the backend refused with `why`.
fn shrink(outcome: &Outcome, why: &str) -> Outcome {
    let short = |error: &str| {
        let mut end = error.len().min(SHRUNK_ERROR);
        while !error.is_char_boundary(end) {
            end -= 1;
        }
        let cut = if end < error.len() { " … (cut short: the backend refused the whole message)" } else { "" };
        Outcome::clean_error(&format!("{}{cut}", &error[..end]))
    };
    match outcome {
        Outcome::Done { result } => Outcome::dead(format!(
            "the run succeeded but its result ({} bytes) could not be recorded: {}",
            result.len(),
            short(why)
        )),
        Outcome::Retry { at, error } => Outcome::Retry { at: *at, error: short(error) },
        Outcome::Dead { error } => Outcome::Dead { error: short(error) },
        Outcome::Snooze { at } => Outcome::Snooze { at: *at },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;

    #[test]
    fn shrunk_outcomes_are_small_and_clean() {
        let long = "x".repeat(10_000);
        match shrink(&Outcome::Done { result: vec![0; 100] }, "packet too large") {
            Outcome::Dead { error } => {
                assert!(error.contains("100 bytes") && error.contains("packet too large"), "{error}");
            }
            other => panic!("a result that cannot be stored makes the task dead, not {other:?}"),
        }
        match shrink(&Outcome::Retry { at: Timestamp(5), error: long }, "refused") {
            Outcome::Retry { at, error } => {
                assert_eq!(at, Timestamp(5));
                assert!(error.len() < SHRUNK_ERROR + 100, "{} bytes", error.len());
            }
            other => panic!("{other:?}"),
        }
        match shrink(&Outcome::Dead { error: "é".repeat(1000) }, "") {
            Outcome::Dead { error } => assert!(error.starts_with('é') && error.len() <= SHRUNK_ERROR + 100),
            other => panic!("{other:?}"),
        }
    }
}
