//! A worker's liveness: heartbeats on their own task, and housekeeping
//! (cancelled runs, orphan rescue, unserved jobs) on another, so a slow
//! housekeeping call never delays a beat.
//!
//! A worker rescues other workers' tasks only once its own heartbeats have
//! gone through without a break for `orphan_after`. After an outage longer
//! than `orphan_after` every worker's last beat is stale; a worker that
//! reconnects first must not take that for the others' death: by the time
//! it has been connected for `orphan_after`, every live worker has beaten
//! again.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Event;
use super::shared::{MAX_ERROR_BACKOFF, MIN_ERROR_BACKOFF, Shared};
use crate::backend::Backend;

/// How often the unserved-job check runs at most.
const UNSERVED_EVERY: Duration = Duration::from_secs(60);
/// How often retention runs at most, per worker (backends pace it further).
const PURGE_EVERY: Duration = Duration::from_secs(10);

/// How long one heartbeat or housekeeping call may take before it counts as
/// failed: a third of `orphan_after`, and at most the beat interval.
fn call_limit<B: Backend>(shared: &Shared<B>, interval: Duration) -> Duration {
    (shared.backend.tuning().orphan_after / 3).min(interval).max(Duration::from_millis(10))
}

/// Beats until the backend accepts it; false if shutdown came first.
pub(super) async fn register<B: Backend>(shared: &Shared<B>, shutdown: &CancellationToken) -> bool {
    let mut pause = MIN_ERROR_BACKOFF;
    loop {
        match shared.backend.heartbeat(&shared.registration).await {
            Ok(()) => {
                shared.liveness.beat_ok();
                return true;
            }
            Err(error) => {
                tracing::warn!(worker = %shared.registration.id, %error, "could not register the worker; retrying");
                shared.emit(|| Event::BackendError { error: error.to_string() });
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return false,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(MAX_ERROR_BACKOFF);
    }
}

/// Beats every `interval`, each beat bounded by its own deadline, until
/// `kill` fires. Nothing else runs on this task.
pub(super) async fn beat_loop<B: Backend>(shared: Arc<Shared<B>>, interval: Duration, kill: CancellationToken) {
    let limit = call_limit(&shared, interval);
    loop {
        tokio::select! {
            () = kill.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        match tokio::time::timeout(limit, shared.backend.heartbeat(&shared.registration)).await {
            Ok(Ok(())) => shared.liveness.beat_ok(),
            Ok(Err(error)) => {
                shared.liveness.beat_failed();
                tracing::warn!(worker = %shared.registration.id, %error, "heartbeat failed");
                shared.emit(|| Event::BackendError { error: error.to_string() });
            }
            Err(_) => {
                shared.liveness.beat_failed();
                tracing::warn!(worker = %shared.registration.id, ?limit, "heartbeat timed out");
                shared.emit(|| Event::BackendError { error: format!("heartbeat timed out after {limit:?}") });
            }
        }
    }
}

/// Every `interval`: reports cancelled runs to their tokens, rescues the
/// tasks of dead workers (once this worker has been connected for
/// `orphan_after`), and now and then looks for unserved jobs.
pub(super) async fn housekeeping_loop<B: Backend>(shared: Arc<Shared<B>>, interval: Duration, kill: CancellationToken) {
    let limit = call_limit(&shared, interval);
    let orphan_after = shared.backend.tuning().orphan_after;
    let mut last_unserved_check: Option<Instant> = None;
    let mut last_purge: Option<Instant> = None;
    loop {
        match tokio::time::timeout(limit, shared.backend.cancelled_tasks(&shared.registration)).await {
            Ok(Ok(ids)) => shared.cancels.cancel(ids),
            Ok(Err(error)) => tracing::warn!(%error, "could not read cancelled tasks"),
            Err(_) => tracing::warn!(?limit, "reading cancelled tasks timed out"),
        }
        if shared.liveness.connected_for(orphan_after) {
            rescue(&shared, orphan_after).await;
        }
        if last_unserved_check.is_none_or(|t| t.elapsed() >= UNSERVED_EVERY) {
            last_unserved_check = Some(Instant::now());
            check_unserved(&shared).await;
        }
        if last_purge.is_none_or(|t| t.elapsed() >= PURGE_EVERY) {
            last_purge = Some(Instant::now());
            purge(&shared, orphan_after).await;
        }
        tokio::select! {
            () = kill.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

async fn rescue<B: Backend>(shared: &Shared<B>, limit: Duration) {
    match tokio::time::timeout(limit, shared.backend.rescue_orphans()).await {
        Ok(Ok(0)) => {}
        Ok(Ok(count)) => {
            tracing::info!(count, "rescued the tasks of workers that stopped heartbeating");
            shared.emit(|| Event::Rescued { count });
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "could not rescue orphaned tasks");
            shared.emit(|| Event::BackendError { error: error.to_string() });
        }
        Err(_) => tracing::warn!(?limit, "orphan rescue timed out"),
    }
}

/// Warns about waiting tasks of jobs that no worker of any process serves
/// (none has beaten within `orphan_after`) and, when the monitor buries
/// unserved tasks, buries those of jobs unserved for the whole grace period.
async fn check_unserved<B: Backend>(shared: &Shared<B>) {
    let Some(check) = &shared.unserved else { return };
    let queue = &shared.registration.queue;
    let now = shared.backend.tuning().clock.now();
    // Reported: jobs no live worker serves (none beat within orphan_after).
    let since = now.sub(shared.backend.tuning().orphan_after);
    match shared.backend.unserved(queue, since).await {
        Ok(unserved) => {
            for found in unserved {
                tracing::warn!(
                    queue = %queue,
                    job = %found.job,
                    count = found.count,
                    "queue `{queue}` holds {} waiting task(s) of job `{}`, which no live worker of any process \
                     serves (this one serves {:?}); start a worker for it{}",
                    found.count,
                    found.job,
                    check.served,
                    if check.bury_after.is_some() { ", or they go dead after the grace period" } else { "" },
                );
                shared.emit(|| Event::Unserved {
                    queue: Arc::clone(queue),
                    job: found.job.clone(),
                    count: found.count,
                });
            }
        }
        Err(error) => tracing::warn!(%error, queue = %queue, "could not look for unserved jobs"),
    }
    // Buried, when the monitor says so: tasks that waited longer than the
    // grace while nobody served their job for the grace.
    let Some(grace) = check.bury_after else { return };
    let cutoff = now.sub(grace);
    let unserved = match shared.backend.unserved(queue, cutoff).await {
        Ok(unserved) => unserved,
        Err(error) => {
            tracing::warn!(%error, queue = %queue, "could not look for unserved jobs");
            return;
        }
    };
    // A job this monitor serves is served, whatever its workers' last beat
    // says: with a grace shorter than the beat interval, a beat is always
    // "too old", and a task not yet claimed would go dead beside its worker.
    let ours = |job: &str| check.served.contains(&job);
    for found in unserved.into_iter().filter(|f| f.oldest <= cutoff && !ours(&f.job)) {
        let reason = format!(
            "no worker of any process served job `{}` on queue `{queue}` for more than {grace:?}. \
             Retry the task once a worker for `{}` runs",
            found.job, found.job
        );
        match shared.backend.bury_unserved(queue, &found.job, cutoff, cutoff, &reason).await {
            Ok(0) => {}
            Ok(count) => {
                tracing::warn!(queue = %queue, job = %found.job, count, "unserved tasks went dead");
                shared.emit(|| Event::Buried { queue: Arc::clone(queue), job: found.job.clone(), count });
            }
            Err(error) => tracing::warn!(%error, queue = %queue, "could not bury unserved tasks"),
        }
    }
}

/// Retention, now and then: deletes finished work past the backend's retention.
async fn purge<B: Backend>(shared: &Shared<B>, limit: Duration) {
    match tokio::time::timeout(limit, shared.backend.purge_expired()).await {
        Ok(Ok(0)) => {}
        Ok(Ok(count)) => tracing::debug!(count, "deleted finished tasks past their retention"),
        Ok(Err(error)) => tracing::warn!(%error, "retention failed"),
        Err(_) => tracing::warn!(?limit, "retention timed out"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::shared::Liveness;
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn rescue_waits_for_an_unbroken_connection() {
        let live = Liveness::default();
        assert!(!live.connected_for(Duration::ZERO), "never connected");
        live.beat_ok();
        assert!(live.connected_for(Duration::ZERO));
        tokio::time::advance(Duration::from_secs(20)).await;
        live.beat_ok();
        assert!(!live.connected_for(Duration::from_secs(30)), "connected for 20 s only");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(live.connected_for(Duration::from_secs(30)));
        live.beat_failed();
        live.beat_ok();
        assert!(!live.connected_for(Duration::from_secs(1)), "a failed beat starts the count again");
        assert_eq!(live.successes(), 3);
    }
}
