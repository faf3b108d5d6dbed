//! Hand-off: a task enqueued while a worker of this process waits for its
//! job is written already claimed by that worker and given to it in memory,
//! so it starts after one statement (the insert's) instead of three (the
//! insert, the claim's update and its read-back).
//!
//! A worker counts as waiting from a claim of its that found nothing, with
//! none of its claims in flight, until its next claim: it then has a free
//! slot (runs only end meanwhile) and is bound to call
//! [`claim`](crate::claim) again, which returns the handed task without a
//! query. The insert (`push_handed.sql`, MariaDB: it needs `RETURNING`)
//! writes the task `running` for the worker under a claim token of its own,
//! unless the queue is paused, when it writes it `pending` as any enqueue.
//! The task is handed only after the insert committed; a worker released
//! meanwhile never sees it, so the enqueuer puts it back by its token (as
//! a claim whose reply was lost is put back, see the `doubt` module); an
//! insert whose outcome or reply was lost, or an enqueue dropped while its
//! insert ran, is recorded as such a doubtful claim of the worker, which
//! its next claim puts back.
//! Everything else a claimed task goes through (heartbeats, orphan rescue,
//! release, cancel) finds it as it would after a claim.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use errand_runtime::Timestamp;
use errand_runtime::backend::{NewTask, Task};

/// The waiting workers of one backend value and the tasks handed to them.
#[derive(Debug, Default)]
pub(crate) struct Handoffs {
    workers: Mutex<HashMap<Arc<str>, Worker>>,
}

/// One worker of this process, as its claims left it.
#[derive(Debug)]
struct Worker {
    queue: Arc<str>,
    job: &'static str,
    /// Claims of it in flight.
    claiming: usize,
    /// Its last claim found nothing and none is in flight: it waits.
    waiting: bool,
    /// Tasks written claimed for it, not yet returned by a claim.
    handed: Vec<Task>,
}

/// A worker picked to take one enqueued task: its id and the claim token
/// the task is written under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pick {
    pub(crate) worker: Arc<str>,
    pub(crate) token: i64,
}

impl Handoffs {
    fn lock(&self) -> MutexGuard<'_, HashMap<Arc<str>, Worker>> {
        self.workers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A claim of `worker` (serving `job` on `queue`) begins: it no longer
    /// waits. Returns up to `max` tasks handed to it, which the claim
    /// returns instead of querying; none most of the time.
    pub(crate) fn claim_begins(&self, worker: &Arc<str>, queue: &str, job: &'static str, max: usize) -> Vec<Task> {
        let mut workers = self.lock();
        let entry = workers.entry(Arc::clone(worker)).or_insert_with(|| Worker {
            queue: Arc::from(queue),
            job,
            claiming: 0,
            waiting: false,
            handed: Vec::new(),
        });
        entry.waiting = false;
        if !entry.handed.is_empty() {
            let take = max.min(entry.handed.len());
            return entry.handed.drain(..take).collect();
        }
        entry.claiming += 1;
        Vec::new()
    }

    /// The claim begun by [`claim_begins`](Self::claim_begins) (one that
    /// queried) ended; `found_nothing` when it succeeded and took nothing.
    pub(crate) fn claim_ends(&self, worker: &str, found_nothing: bool) {
        if let Some(entry) = self.lock().get_mut(worker) {
            entry.claiming = entry.claiming.saturating_sub(1);
            entry.waiting = found_nothing && entry.claiming == 0 && entry.handed.is_empty();
        }
    }

    /// `worker` was released: it takes nothing more. Its handed tasks are
    /// `running` for it in the table, and the release puts them back there.
    pub(crate) fn forget(&self, worker: &str) {
        self.lock().remove(worker);
    }

    /// Picks a waiting worker for `task` (due by `now`, no unique key) and
    /// takes it off the waiting list, or `None` when no worker of its job
    /// and queue waits.
    pub(crate) fn pick(&self, task: &NewTask, now: Timestamp, token: impl FnOnce() -> i64) -> Option<Pick> {
        if task.unique_key.is_some() || task.run_at > now {
            return None;
        }
        let mut workers = self.lock();
        let (id, entry) =
            workers.iter_mut().find(|(_, w)| w.waiting && w.job == task.job && *w.queue == *task.queue)?;
        entry.waiting = false;
        Some(Pick { worker: Arc::clone(id), token: token() })
    }

    /// The task picked for `pick` was written `running` for it: hand it
    /// over. Returns it back when the worker was released meanwhile (the
    /// caller puts it back in the table).
    pub(crate) fn hand(&self, pick: &Pick, task: Task) -> Result<(), Task> {
        match self.lock().get_mut(&pick.worker) {
            Some(entry) => {
                entry.handed.push(task);
                Ok(())
            }
            None => Err(task),
        }
    }

    /// The task picked for `pick` was written `pending` (its queue is
    /// paused): the worker waits as before.
    pub(crate) fn unpick(&self, pick: &Pick) {
        if let Some(entry) = self.lock().get_mut(&pick.worker) {
            entry.waiting = entry.claiming == 0 && entry.handed.is_empty();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(queue: &str, job: &'static str, run_at: i64) -> NewTask {
        NewTask {
            queue: queue.to_owned(),
            job,
            payload: Vec::new(),
            max_attempts: 3,
            priority: 0,
            run_at: Timestamp(run_at),
            unique_key: None,
            unique_for: None,
            trace: None,
        }
    }

    fn handed(id: u64) -> Task {
        Task {
            id: errand_runtime::TaskId(id),
            attempt: 1,
            max_attempts: 3,
            run_at: Timestamp(0),
            priority: 0,
            payload: Vec::new(),
            trace: None,
        }
    }

    #[test]
    fn only_a_worker_waiting_after_an_empty_claim_is_picked() {
        let h = Handoffs::default();
        let w: Arc<str> = Arc::from("w1");
        let now = Timestamp(100);
        assert!(h.claim_begins(&w, "q", "j", 4).is_empty());
        assert_eq!(h.pick(&task("q", "j", 0), now, || 1), None, "a claim in flight: not waiting");
        h.claim_ends(&w, false);
        assert_eq!(h.pick(&task("q", "j", 0), now, || 1), None, "its claim found tasks: busy");
        h.claim_begins(&w, "q", "j", 4);
        h.claim_begins(&w, "q", "j", 4);
        h.claim_ends(&w, true);
        assert_eq!(h.pick(&task("q", "j", 0), now, || 1), None, "another claim still in flight");
        h.claim_ends(&w, true);
        // Waiting now, but only for due tasks of its job on its queue.
        assert_eq!(h.pick(&task("q", "other", 0), now, || 1), None);
        assert_eq!(h.pick(&task("other", "j", 0), now, || 1), None);
        assert_eq!(h.pick(&task("q", "j", 101), now, || 1), None, "not due yet");
        let mut keyed = task("q", "j", 0);
        keyed.unique_key = Some("k".into());
        assert_eq!(h.pick(&keyed, now, || 1), None, "unique keys take their own path");
        let pick = h.pick(&task("q", "j", 0), now, || 7).expect("waiting");
        assert_eq!(pick, Pick { worker: Arc::clone(&w), token: 7 });
        assert_eq!(h.pick(&task("q", "j", 0), now, || 8), None, "one task per wait");
    }

    #[test]
    fn a_handed_task_comes_back_from_the_next_claim_only() {
        let h = Handoffs::default();
        let w: Arc<str> = Arc::from("w1");
        h.claim_begins(&w, "q", "j", 1);
        h.claim_ends(&w, true);
        let pick = h.pick(&task("q", "j", 0), Timestamp(0), || 1).expect("waiting");
        assert!(h.hand(&pick, handed(5)).is_ok());
        let got = h.claim_begins(&w, "q", "j", 1);
        assert_eq!(got.iter().map(|t| t.id.0).collect::<Vec<_>>(), [5]);
        assert!(h.claim_begins(&w, "q", "j", 1).is_empty(), "handed once");
    }

    #[test]
    fn a_released_worker_gets_nothing_and_a_paused_queue_keeps_it_waiting() {
        let h = Handoffs::default();
        let w: Arc<str> = Arc::from("w1");
        h.claim_begins(&w, "q", "j", 1);
        h.claim_ends(&w, true);
        let pick = h.pick(&task("q", "j", 0), Timestamp(0), || 1).expect("waiting");
        h.unpick(&pick);
        let pick = h.pick(&task("q", "j", 0), Timestamp(0), || 2).expect("still waiting");
        h.forget(&w);
        let back = h.hand(&pick, handed(9)).expect_err("released");
        assert_eq!(back.id.0, 9);
        assert_eq!(h.pick(&task("q", "j", 0), Timestamp(0), || 3), None);
    }
}
