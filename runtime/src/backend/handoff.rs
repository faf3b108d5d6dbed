//! Hand-off: a task enqueued while a worker of the same backend value waits
//! for its job is written already claimed by that worker and given to it in
//! memory, so it starts after one statement (the insert's) instead of the
//! insert, the claim and its read-back.
//!
//! [`Handoffs`] is the bookkeeping; the backend writes the rows. A worker
//! counts as waiting from a claim of its that found nothing, with none of
//! its claims in flight, until its next claim: it then has a free slot
//! (runs only end meanwhile) and is bound to call [`Backend::claim`] again,
//! which returns the handed task without a query. A backend that hands off:
//!
//! 1. brackets every claim that queries with
//!    [`claim_begins`](Handoffs::claim_begins) (which returns the handed
//!    tasks instead, when there are any) and
//!    [`claim_ends`](Handoffs::claim_ends);
//! 2. on a single due enqueue without a unique key, asks
//!    [`pick`](Handoffs::pick) for a waiting worker, writes the task
//!    `running` for it (attempt 1) under the pick's claim token in one
//!    statement — `pending`, as any enqueue, while its queue is paused —
//!    holding the [`Writing`] guard from [`writing`](Handoffs::writing);
//! 3. ends the guard by its outcome: [`handed`](Writing::handed) when it
//!    wrote the task `running` (and puts the task back itself when that
//!    returns `false`: the worker was released meanwhile), or
//!    [`not_handed`](Writing::not_handed) when it wrote it waiting or knows
//!    the write failed. Dropped otherwise (the write failed with its
//!    outcome unknown, or the enqueue was dropped mid-way), the guard
//!    leaves the task to be put back by its token before that worker's next
//!    claim, as a claim whose reply was lost;
//! 4. calls [`forget`](Handoffs::forget) when it releases a worker.
//!
//! Everything else a claimed task goes through (heartbeats, orphan rescue,
//! release, cancel) finds it as it would after a claim. A handed task skips
//! the claim's ordering against a higher-priority task that another process
//! enqueued while the worker waited.
//!
//! [`Backend::claim`]: crate::backend::Backend::claim

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::backend::{NewTask, Task};
use crate::task::TaskId;
use crate::time::Timestamp;

/// The waiting workers of one backend value and the tasks handed to them.
#[derive(Debug, Default)]
pub struct Handoffs {
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
pub struct Pick {
    /// The worker's id ([`WorkerRegistration::id`](crate::backend::WorkerRegistration::id)).
    pub worker: Arc<str>,
    /// The claim token to write into the task's row, from the backend's
    /// token source (unique among this backend value's claims).
    pub token: i64,
}

/// How a claim begins: see [`Handoffs::claim_begins`].
#[derive(Debug)]
pub enum Begun<'a> {
    /// Tasks handed to the worker: the claim returns them, without a query.
    Handed(Vec<Task>),
    /// The claim queries, holding this until it ends.
    Query(Claiming<'a>),
}

/// A claim that queries, in flight: dropped, however the claim ends, it
/// records the end, and the worker waits if it
/// [`found_nothing`](Self::found_nothing).
#[derive(Debug)]
pub struct Claiming<'a> {
    handoffs: &'a Handoffs,
    worker: &'a str,
    found_nothing: bool,
}

impl Claiming<'_> {
    /// The claim succeeded and took nothing: the worker waits from its end.
    pub fn found_nothing(&mut self) {
        self.found_nothing = true;
    }
}

impl Drop for Claiming<'_> {
    fn drop(&mut self) {
        self.handoffs.claim_ends(self.worker, self.found_nothing);
    }
}

/// A hand-off's write in flight; see [`Handoffs::writing`].
#[must_use = "dropped without `handed` or `not_handed`, it records the hand-off as doubtful"]
pub struct Writing<'a, F: FnOnce(&Pick)> {
    handoffs: &'a Handoffs,
    pick: &'a Pick,
    doubtful: Option<F>,
}

impl<F: FnOnce(&Pick)> Writing<'_, F> {
    /// The task was written `running` for the picked worker as task `id`
    /// (attempt 1): hands it over. `false` when the worker was released
    /// meanwhile: nobody will take the task, so the caller puts it back in
    /// the table by its token.
    #[must_use]
    pub fn handed(mut self, id: TaskId, task: &NewTask) -> bool {
        self.doubtful = None;
        self.handoffs.hand(self.pick, id, task)
    }

    /// The task was written waiting (its queue is paused), or surely was
    /// not written: the worker waits as before.
    pub fn not_handed(mut self) {
        self.doubtful = None;
        self.handoffs.unpick(self.pick);
    }
}

impl<F: FnOnce(&Pick)> Drop for Writing<'_, F> {
    fn drop(&mut self) {
        if let Some(doubtful) = self.doubtful.take() {
            doubtful(self.pick);
            self.handoffs.unpick(self.pick);
        }
    }
}

impl<F: FnOnce(&Pick)> fmt::Debug for Writing<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writing").field("pick", self.pick).field("settled", &self.doubtful.is_none()).finish()
    }
}

impl Handoffs {
    fn lock(&self) -> MutexGuard<'_, HashMap<Arc<str>, Worker>> {
        self.workers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A claim of `worker` (serving `job` on `queue`) begins: it no longer
    /// waits. Up to `max` tasks handed to it, which the claim returns
    /// instead of querying (rarely); otherwise a [`Claiming`] to hold while
    /// the claim queries.
    pub fn claim_begins<'a>(&'a self, worker: &'a Arc<str>, queue: &str, job: &'static str, max: usize) -> Begun<'a> {
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
            return Begun::Handed(entry.handed.drain(..take).collect());
        }
        entry.claiming += 1;
        Begun::Query(Claiming { handoffs: self, worker, found_nothing: false })
    }

    /// A claim that queried ended; `found_nothing` when it succeeded and
    /// took nothing.
    fn claim_ends(&self, worker: &str, found_nothing: bool) {
        if let Some(entry) = self.lock().get_mut(worker) {
            entry.claiming = entry.claiming.saturating_sub(1);
            entry.waiting = found_nothing && entry.claiming == 0 && entry.handed.is_empty();
        }
    }

    /// `worker` was released: it takes nothing more. Its handed tasks are
    /// `running` for it in the table, and the release puts them back there.
    pub fn forget(&self, worker: &str) {
        self.lock().remove(worker);
    }

    /// Picks a waiting worker for `task` (due by `now`, no unique key) and
    /// takes it off the waiting list, or `None` when no worker of its job
    /// and queue waits.
    pub fn pick(&self, task: &NewTask, now: Timestamp, token: impl FnOnce() -> i64) -> Option<Pick> {
        if task.unique_key.is_some() || task.run_at > now {
            return None;
        }
        let mut workers = self.lock();
        let (id, entry) =
            workers.iter_mut().find(|(_, w)| w.waiting && w.job == task.job && *w.queue == *task.queue)?;
        entry.waiting = false;
        Some(Pick { worker: Arc::clone(id), token: token() })
    }

    /// `task`, written `running` for the worker of `pick` as task `id`:
    /// hands it over; `false` when the worker was released meanwhile.
    fn hand(&self, pick: &Pick, id: TaskId, task: &NewTask) -> bool {
        match self.lock().get_mut(&pick.worker) {
            Some(entry) => {
                entry.handed.push(Task {
                    id,
                    attempt: 1,
                    max_attempts: task.max_attempts,
                    run_at: task.run_at,
                    priority: task.priority,
                    payload: task.payload.clone(),
                    trace: task.trace.clone(),
                });
                true
            }
            None => false,
        }
    }

    /// The write of the task picked for `pick` begins: until the guard is
    /// ended by [`handed`](Writing::handed) or
    /// [`not_handed`](Writing::not_handed), the task may be `running` for
    /// the worker with nobody to run it. Dropped instead (the write failed
    /// with its outcome unknown, or the enqueue was dropped mid-way), the
    /// guard calls `doubtful`, which records the pick so that the task is
    /// put back by its token before the worker's next claim, and the
    /// worker waits again.
    pub fn writing<'a, F: FnOnce(&Pick)>(&'a self, pick: &'a Pick, doubtful: F) -> Writing<'a, F> {
        Writing { handoffs: self, pick, doubtful: Some(doubtful) }
    }

    /// The task picked for `pick` was not handed over: the worker waits as
    /// before.
    fn unpick(&self, pick: &Pick) {
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

    fn query(begun: Begun<'_>) -> Claiming<'_> {
        match begun {
            Begun::Query(claiming) => claiming,
            Begun::Handed(tasks) => panic!("{} task(s) handed, none expected", tasks.len()),
        }
    }

    #[test]
    fn only_a_worker_waiting_after_an_empty_claim_is_picked() {
        let h = Handoffs::default();
        let w: Arc<str> = Arc::from("w1");
        let now = Timestamp(100);
        let first = query(h.claim_begins(&w, "q", "j", 4));
        assert_eq!(h.pick(&task("q", "j", 0), now, || 1), None, "a claim in flight: not waiting");
        drop(first);
        assert_eq!(h.pick(&task("q", "j", 0), now, || 1), None, "its claim found tasks: busy");
        let mut second = query(h.claim_begins(&w, "q", "j", 4));
        let mut third = query(h.claim_begins(&w, "q", "j", 4));
        second.found_nothing();
        drop(second);
        assert_eq!(h.pick(&task("q", "j", 0), now, || 1), None, "another claim still in flight");
        third.found_nothing();
        drop(third);
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

    /// Worker `w1`, waiting after an empty claim, picked for a task under `token`.
    fn picked(h: &Handoffs, token: i64) -> (Arc<str>, Pick) {
        let w: Arc<str> = Arc::from("w1");
        query(h.claim_begins(&w, "q", "j", 1)).found_nothing();
        let pick = h.pick(&task("q", "j", 0), Timestamp(0), || token).expect("waiting");
        (w, pick)
    }

    /// Records nothing: for writes the test ends itself.
    fn no_doubt(_: &Pick) {}

    #[test]
    fn a_handed_task_comes_back_from_the_next_claim_only() {
        let h = Handoffs::default();
        let (w, pick) = picked(&h, 1);
        assert!(h.writing(&pick, no_doubt).handed(TaskId(5), &task("q", "j", 0)));
        let Begun::Handed(got) = h.claim_begins(&w, "q", "j", 1) else { panic!("not handed") };
        assert_eq!(got.iter().map(|t| (t.id.0, t.attempt)).collect::<Vec<_>>(), [(5, 1)]);
        assert!(matches!(h.claim_begins(&w, "q", "j", 1), Begun::Query(_)), "handed once");
    }

    #[test]
    fn a_released_worker_gets_nothing_and_a_paused_queue_keeps_it_waiting() {
        let h = Handoffs::default();
        let (w, pick) = picked(&h, 1);
        h.writing(&pick, no_doubt).not_handed();
        let pick = h.pick(&task("q", "j", 0), Timestamp(0), || 2).expect("still waiting");
        h.forget(&w);
        assert!(!h.writing(&pick, no_doubt).handed(TaskId(9), &task("q", "j", 0)), "released");
        assert_eq!(h.pick(&task("q", "j", 0), Timestamp(0), || 3), None);
    }

    #[test]
    fn a_write_dropped_unsettled_is_doubtful_and_the_worker_waits_again() {
        let h = Handoffs::default();
        let (_, pick) = picked(&h, 4);
        let mut doubts = Vec::new();
        drop(h.writing(&pick, |p| doubts.push(p.token)));
        assert_eq!(doubts, [4], "an unsettled write is recorded");
        let pick = h.pick(&task("q", "j", 0), Timestamp(0), || 5).expect("waiting again");
        h.writing(&pick, |p| doubts.push(p.token)).not_handed();
        assert_eq!(doubts, [4], "a settled write is not");
        assert!(h.pick(&task("q", "j", 0), Timestamp(0), || 6).is_some(), "and the worker waits again");
    }
}
