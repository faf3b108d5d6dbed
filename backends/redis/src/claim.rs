//! Claiming tasks: the claim script, redelivering claims whose reply was
//! lost, and burying claimed tasks whose record or state cannot be read.
//!
//! Every claim carries a token (ascending per backend handle), and the
//! script keeps, per worker, the tasks each claim handed out until the
//! worker confirms it received them (`cl:<worker>`). When a claim's call
//! fails, the script may have run and only its reply been lost: the token is
//! remembered as lost, and the worker's next claim sends it along so that
//! the script hands those tasks (still running for the worker) out again.
//!
//! A lost claim may also not have run *yet*: queued behind a connection
//! that broke, it can run after a later claim of the same worker. Each
//! claim therefore also sends the worker's *floor*, the lowest token it
//! still waits for an answer to; the script keeps the highest floor it saw
//! and refuses (takes nothing, writes nothing) a claim below it. A lost
//! token is forgotten once a claim sent with a floor above it was answered:
//! from then on it can no longer take anything.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use errand_runtime::backend::stored::bad_data;
use errand_runtime::backend::{Claimed, Task, WorkerRegistration};
use errand_runtime::{Codec, Error, TaskId, Timestamp};
use redis::Value;

use crate::keys::task_id;
use crate::record::{self, retention_ms};
use crate::reply::{self, NAME, count, failed, int, malformed};
use crate::{Inner, RedisBackend, lock};

/// Due delayed tasks moved to the ready set per claim, at most (also the
/// batch of `bury_unserved`).
pub(crate) const MOVE_BATCH: usize = 1000;
/// Lost and confirmed claim tokens remembered per worker, at most.
const MAX_TOKENS: usize = 256;
/// Values per task in a claim reply.
const CLAIM_STRIDE: usize = 4;

/// One worker's claims, for redelivering those whose reply was lost.
#[derive(Debug, Default)]
pub(crate) struct ClaimBook {
    /// Claims sent and not answered yet.
    in_flight: BTreeSet<u64>,
    /// Claims whose call failed: their script may have run, or may run later.
    lost: Vec<u64>,
    /// Claims that handed out tasks and were answered: their entries in
    /// `cl:<worker>` can go.
    confirmed: Vec<u64>,
}

/// Per worker id, its claim book.
pub(crate) type ClaimBooks = HashMap<Arc<str>, ClaimBook>;

fn remember(tokens: &mut Vec<u64>, token: u64) {
    if tokens.len() >= MAX_TOKENS {
        tokens.remove(0);
    }
    tokens.push(token);
}

/// A claim that was sent: unless it is marked answered, dropping it (the
/// call failed, or the claiming future was dropped) records its token as lost.
struct Sent<'a> {
    inner: &'a Inner,
    worker: &'a Arc<str>,
    token: u64,
    answered: bool,
}

impl Drop for Sent<'_> {
    fn drop(&mut self) {
        if !self.answered {
            let mut books = lock(&self.inner.claims);
            let book = books.entry(Arc::clone(self.worker)).or_default();
            book.in_flight.remove(&self.token);
            remember(&mut book.lost, self.token);
        }
    }
}

/// A claimed task that cannot be run because its stored data cannot be read.
struct Unreadable {
    seq: u64,
    /// The read error, as the task's last error.
    error: String,
}

/// A claim reply, read.
struct ClaimReply {
    claimed: Claimed,
    unreadable: Vec<Unreadable>,
}

impl<C: Codec> RedisBackend<C> {
    /// [`Backend::claim`](errand_runtime::Backend::claim): one claim script
    /// call, then, if some claimed tasks cannot be read, one call that sends
    /// those tasks to `dead`. The script checks the queue's `paused` flag: a
    /// paused queue gives no new task and no `next_due` (the tasks of this
    /// worker's lost claims are still handed out again: they are running
    /// for it already).
    pub(crate) async fn claim_tasks(&self, worker: &WorkerRegistration, max: usize) -> Result<Claimed, Error> {
        let queue = &*worker.queue;
        let number = self.queue_number(queue).await?;
        let base = self.inner.keys.base(queue);
        let (token, floor, lost, confirmed) = {
            let mut books = lock(&self.inner.claims);
            let book = books.entry(Arc::clone(&worker.id)).or_default();
            let token = self.inner.claim_tokens.fetch_add(1, Ordering::Relaxed) + 1;
            book.in_flight.insert(token);
            let floor = book.in_flight.first().copied().unwrap_or(token);
            (token, floor, book.lost.clone(), book.confirmed.clone())
        };
        let mut sent = Sent { inner: &self.inner, worker: &worker.id, token, answered: false };
        let lua = &self.inner.scripts.claim;
        let mut cmd = lua.call(&[
            &format!("{base}r:{}", worker.job),
            &format!("{base}d:{}", worker.job),
            &format!("{base}if:{}", worker.id),
            &format!("{base}n"),
            &format!("{base}cl:{}", worker.id),
            &format!("{base}paused"),
        ]);
        cmd.arg(&base)
            .arg(self.now().as_millis())
            .arg(max)
            .arg(&*worker.id)
            .arg(MOVE_BATCH)
            .arg(token)
            .arg(floor)
            .arg(lost.len())
            .arg(&lost)
            .arg(&confirmed);
        let what = || format!("claim tasks of job `{}` from queue `{queue}`", worker.job);
        // On failure `sent` is dropped unanswered: the script may have run
        // and only its reply been lost, and the next claim redelivers.
        let value = lua.run(&mut self.conn(), &cmd).await.map_err(|e| failed(what(), e))?;
        sent.answered = true;
        self.claim_answered(&worker.id, token, floor, &lost, &confirmed);
        let reply = match read_claim(number, queue, value, &what()) {
            Ok(reply) => reply,
            Err(error) => {
                // The tasks are running for this worker but cannot be
                // handed to it: the next claim redelivers them.
                self.claim_lost(&worker.id, token);
                return Err(error);
            }
        };
        if !reply.unreadable.is_empty()
            && let Err(error) = self.bury_unreadable(worker, &base, &reply.unreadable).await
        {
            // Put back the whole claim: the next one buries them again.
            self.claim_lost(&worker.id, token);
            return Err(error);
        }
        if !reply.claimed.tasks.is_empty() || !reply.unreadable.is_empty() {
            let mut books = lock(&self.inner.claims);
            remember(&mut books.entry(Arc::clone(&worker.id)).or_default().confirmed, token);
        }
        Ok(reply.claimed)
    }

    /// Sends claimed tasks whose stored data cannot be read to `dead` with
    /// the read error, if they are still running for `worker` (a workflow
    /// step's run fails with them).
    async fn bury_unreadable(
        &self,
        worker: &WorkerRegistration,
        base: &str,
        tasks: &[Unreadable],
    ) -> Result<(), Error> {
        let lua = &self.inner.scripts.unreadable;
        let mut cmd = lua.call(&[&format!("{base}if:{}", worker.id), &format!("{base}n"), &format!("{base}dead")]);
        cmd.arg(base).arg(self.now().as_millis()).arg(&*worker.id).arg(retention_ms(self.inner.tuning.retention));
        for task in tasks {
            cmd.arg(task.seq).arg(&task.error);
        }
        let what = format!("send {} unreadable claimed task(s) of queue `{}` to dead", tasks.len(), worker.queue);
        let value = lua.run(&mut self.conn(), &cmd).await.map_err(|e| failed(what.as_str(), e))?;
        count(&value, &what)?;
        Ok(())
    }

    /// The claim with `token`, sent with `floor`, `lost` and `confirmed`,
    /// was answered: the confirmed entries are gone, and the lost tokens
    /// below the floor can no longer take anything (the others are sent
    /// again, in case their claim runs late).
    fn claim_answered(&self, worker: &Arc<str>, token: u64, floor: u64, lost: &[u64], confirmed: &[u64]) {
        let mut books = lock(&self.inner.claims);
        let book = books.entry(Arc::clone(worker)).or_default();
        book.in_flight.remove(&token);
        book.lost.retain(|t| !(lost.contains(t) && *t < floor));
        book.confirmed.retain(|t| !confirmed.contains(t));
    }

    /// The claim with `token` ran, but its tasks did not reach the worker.
    fn claim_lost(&self, worker: &Arc<str>, token: u64) {
        let mut books = lock(&self.inner.claims);
        remember(&mut books.entry(Arc::clone(worker)).or_default().lost, token);
    }

    /// Forgets the claims of a worker that stopped.
    pub(crate) fn forget_claims(&self, worker: &Arc<str>) {
        lock(&self.inner.claims).remove(worker);
    }
}

/// The claimed tasks of queue number `queue` (named `queue_name`), and
/// those whose stored data cannot be read. `what` names the claim.
fn read_claim(queue: u32, queue_name: &str, value: Value, what: &str) -> Result<ClaimReply, Error> {
    let items = reply::into_array(value, what)?;
    if items.is_empty() || (items.len() - 1) % CLAIM_STRIDE != 0 {
        return Err(malformed(what, format!("the claim script returned {} values", items.len())));
    }
    let mut items = items.into_iter();
    let next_due = items.next().as_ref().and_then(int).filter(|n| *n >= 0).map(Timestamp);
    let mut tasks = Vec::with_capacity(items.len() / CLAIM_STRIDE);
    let mut unreadable = Vec::new();
    while let (Some(seq), Some(attempt), Some(run_at), Some(stored)) =
        (items.next(), items.next(), items.next(), items.next())
    {
        let Some(seq) = int(&seq).and_then(|s| u64::try_from(s).ok()) else {
            return Err(malformed(what, format!("the claim script returned {seq:?} as a task's seq")));
        };
        let id = task_id(queue, seq);
        let Value::BulkString(stored) = stored else {
            return Err(malformed(what, format!("the claim script returned no record for task {id}")));
        };
        let read = match attempt {
            // The script found the task's state value malformed (it is
            // the third value): the task goes dead saying so.
            Value::Nil => Err(reply::bytes(run_at)
                .and_then(|state| record::state(&state).err())
                .unwrap_or_else(|| "its state is malformed".to_owned())),
            attempt => read_task(id, &attempt, run_at, stored),
        };
        match read {
            Ok(task) => tasks.push(task),
            Err(problem) => {
                let error = bad_data(NAME, &format!("task {id} of queue `{queue_name}`"), problem);
                tracing::error!(task = %id, queue = queue_name, %error, "a claimed task cannot be read; it goes dead");
                unreadable.push(Unreadable { seq, error: error.to_string() });
            }
        }
    }
    let next_due = if tasks.is_empty() && unreadable.is_empty() { next_due } else { None };
    Ok(ClaimReply { claimed: Claimed { tasks, next_due }, unreadable })
}

/// One claimed task from its attempt, its `run_at` if it differs from the
/// record's (nil otherwise) and its record (which holds its trace context,
/// if any).
fn read_task(id: TaskId, attempt: &Value, run_at: Value, mut stored: Vec<u8>) -> Result<Task, String> {
    let attempt = int(attempt)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| format!("its attempt {attempt:?} is not a number of runs"))?;
    let run_at = match run_at {
        Value::Nil => None,
        other => Some(int(&other).ok_or_else(|| format!("its run_at {other:?} is not a time in ms"))?),
    };
    let read = record::read(&stored)?;
    let task = Task {
        id,
        attempt,
        max_attempts: read.max_attempts,
        run_at: Timestamp(run_at.unwrap_or(read.run_at)),
        priority: read.priority,
        payload: Vec::new(),
        trace: read.trace.map(str::to_owned),
    };
    // The payload is the record's tail: keep the reply's buffer.
    let head = stored.len() - read.payload.len();
    stored.drain(..head);
    Ok(Task { payload: stored, ..task })
}

#[cfg(test)]
mod tests {
    use errand_runtime::backend::NewTask;

    use super::*;

    fn stored() -> Vec<u8> {
        stored_with(None)
    }

    fn stored_with(trace: Option<&str>) -> Vec<u8> {
        let task = NewTask {
            job: "resize",
            queue: "q".to_owned(),
            payload: b"{\"n\":1}".to_vec(),
            run_at: Timestamp(1_700_000_000_123),
            priority: 2,
            max_attempts: 3,
            unique_key: None,
            unique_for: None,
            trace: trace.map(str::to_owned),
        };
        let mut buf = Vec::new();
        record::write(&mut buf, &task, 1_700_000_000_000).unwrap_or_else(|e| panic!("{e}"));
        buf
    }

    #[test]
    fn unreadable_tasks_are_set_apart() {
        let reply = Value::Array(vec![
            Value::Int(-1),
            Value::Int(7),
            Value::Int(1),
            Value::Nil,
            Value::BulkString(stored()),
            Value::Int(8),
            Value::Int(2),
            Value::Nil,
            Value::BulkString(b"garbage".to_vec()),
        ]);
        let read = read_claim(1, "q", reply, "claim").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read.claimed.tasks.len(), 1);
        let task = &read.claimed.tasks[0];
        assert_eq!((task.id, task.attempt, task.payload.as_slice()), (task_id(1, 7), 1, &b"{\"n\":1}"[..]));
        assert_eq!(task.run_at, Timestamp(1_700_000_000_123));
        assert_eq!(read.unreadable.len(), 1);
        assert_eq!(read.unreadable[0].seq, 8);
        let error = &read.unreadable[0].error;
        assert!(error.contains(&format!("task {}", task_id(1, 8))) && error.contains("queue `q`"), "{error}");
        assert!(error.contains("shorter than its 25-byte header"), "{error}");
    }

    #[test]
    fn claimed_tasks_carry_their_trace_context() {
        let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\nvendor=errand";
        let reply = Value::Array(vec![
            Value::Int(-1),
            Value::Int(7),
            Value::Int(2),
            Value::Int(1_700_000_005_000),
            Value::BulkString(stored_with(Some(trace))),
            Value::Int(8),
            Value::Int(1),
            Value::Nil,
            Value::BulkString(stored()),
        ]);
        let read = read_claim(1, "q", reply, "claim").unwrap_or_else(|e| panic!("{e}"));
        let tasks = &read.claimed.tasks;
        assert_eq!(tasks.len(), 2);
        assert_eq!((tasks[0].trace.as_deref(), tasks[0].payload.as_slice()), (Some(trace), &b"{\"n\":1}"[..]));
        assert_eq!(tasks[0].run_at, Timestamp(1_700_000_005_000));
        assert_eq!((tasks[1].trace.as_deref(), tasks[1].payload.as_slice()), (None, &b"{\"n\":1}"[..]));
    }

    #[test]
    fn a_reply_without_seqs_is_an_error() {
        let reply = Value::Array(vec![Value::Int(-1), Value::Nil, Value::Int(1), Value::Nil, Value::Nil]);
        assert!(read_claim(1, "q", reply, "claim").is_err());
    }
}
