//! Redis backend for [errand](https://docs.rs/errand): tasks in hashes and
//! sorted sets, every state change one atomic Lua script, idle workers woken
//! through pub/sub.
//!
//! ```no_run
//! use errand_redis::RedisBackend;
//! use errand_runtime::{Job, JobError, Monitor, TaskCx, TaskSink, WorkerBuilder};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Resize { image: String }
//!
//! impl Job for Resize {
//!     const NAME: &'static str = "resize";
//!     type Output = ();
//!     async fn run(self, _cx: TaskCx) -> Result<(), JobError> { Ok(()) }
//! }
//!
//! # async fn demo() -> Result<(), errand_runtime::Error> {
//! let backend = RedisBackend::connect("redis://127.0.0.1:6379").await?;
//! backend.enqueue(Resize { image: "cat.png".into() }).await?;
//! Monitor::new()
//!     .register(WorkerBuilder::<Resize, _>::new(backend.clone()).concurrency(16))
//!     .run() // until Ctrl-C, then a graceful stop
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! # Defaults
//!
//! | setting | default | builder method |
//! |---|---|---|
//! | key prefix | `errand:` | [`RedisBuilder::prefix`] |
//! | codec | JSON | [`RedisBuilder::codec`] |
//! | `done` tasks kept | 24 h | [`RedisBuilder::retention`] |
//! | rescue after no heartbeat for | 30 s | [`RedisBuilder::orphan_after`] |
//! | idle poll (fallback only) | 5 s | [`RedisBuilder::poll_interval`] |
//! | one call's timeout | 10 s | [`RedisBuilder::response_timeout`] |
//!
//! # Key layout
//!
//! With prefix `P` (default `errand:`), every key of queue `q` starts with
//! `P{q}:` — the queue's name is the hash tag, so a queue lives in one Redis
//! Cluster slot and every script touches that slot only:
//!
//! | key | type | what |
//! |---|---|---|
//! | `P{q}:seq` | string | the queue's task counter (one `INCRBY` per enqueue call) |
//! | `P{q}:t` | hash | field `<seq>` → the task's record, written once at enqueue: flags, priority, max attempts, created and run_at (ms), job, then, if set, unique key and window, workflow run and step, then the payload (binary, big-endian; the scripts read it with Lua's `struct`) |
//! | `P{q}:s` | hash | field `<seq>` → the task's state once first claimed: a letter (`p`ending, `r`unning, `y` retry, `d`one, `x` dead, `c`ancelled), the attempt, `\|` run_at if it changed; for a finished task `\|` finished (ms), for a done one then `\|` its output. No field: pending, attempt 0 |
//! | `P{q}:e` | hash | field `<seq>` → the task's last error |
//! | `P{q}:r:<job>` | sorted set | ready tasks of a job; score `-priority`, member `run_at`(13 digits)`seq`(12 digits), so the first by rank are the highest priority, then the earliest `run_at`, then the oldest |
//! | `P{q}:d:<job>` | sorted set | delayed tasks (pending in the future, and retries) by `run_at` in ms |
//! | `P{q}:done:<block>` | string (bitmap) | done tasks: bit `seq % 100000` of block `seq / 100000` (for listings; one `BITFIELD` per block and ack call sets them) |
//! | `P{q}:db` | sorted set | the blocks that hold done tasks, scored by block (an emptied block is deleted) |
//! | `P{q}:dead`, `:cancelled` | sorted sets | dead and cancelled tasks by seq (for listings) |
//! | `P{q}:x` | sorted set | when done tasks expire: a member lists the seqs (comma separated) of the tasks one ack call finished, scored by their expiry, so pruning costs one entry per ack call, not one per task |
//! | `P{q}:n` | hash | task counts per state |
//! | `P{q}:jobs` | set | job names seen on the queue |
//! | `P{q}:u:<job>:<key>` | string | unique key (scoped to the job) → seq of the task holding it |
//! | `P{q}:w`, `P{q}:wi` | sorted set, hash | workers by last heartbeat; their job, concurrency and start |
//! | `P{q}:hb:<worker>` | string with TTL `orphan_after` | the worker's heartbeat |
//! | `P{q}:if:<worker>` | set | the worker's in-flight tasks |
//! | `P{q}:lc:<worker>` | string | the worker's last claim: its token and seqs, comma separated (redelivered if its reply was lost) |
//! | `P{q}:sp:<worker>` | set | the worker's running tasks whose ack reads their record (workflow steps, unique keys) |
//! | `P{q}:cx:<worker>` | set | the worker's running tasks cancelled meanwhile (read by `cancelled_tasks`) |
//! | `P{q}:wseq` | string | the queue's workflow run counter |
//! | `P{q}:wr:<run>` | hash | one workflow run; see [Workflows](#workflows) |
//! | `P{~}:queues`, `P{~}:queue-ids`, `P{~}:queue-seq` | hashes, string | the queue registry |
//!
//! Wake-ups go over the pub/sub channel `Pwake` (the message is the queue's
//! name); a backend opens one subscription connection once a worker waits.
//!
//! A task is a field in a few per-queue hashes rather than a key of its own,
//! so a claim or an ack of a whole batch is a handful of multi-field
//! commands (`HMGET`, `HSET`, `SADD`, `BITFIELD`), whatever the batch's
//! size.
//! A task's running worker is the one whose `if:<worker>` set holds it.
//!
//! A task id is `queue number << 40 | seq`: ids are unique under one prefix,
//! ascending within a queue (with gaps where an enqueue found a duplicate),
//! and listed by ascending id across queues. A workflow run id is built the
//! same way from the queue of its steps and its run number.
//!
//! # Workflows
//!
//! [`RedisBackend`] implements
//! [`WorkflowStore`](errand_runtime::workflow::WorkflowStore). Every step is
//! a task of job `Workflow::NAME` on the workflow's queue, so a run lives in
//! one hash slot with its tasks. `start_run` writes the run hash and the
//! tasks of the entry steps in one script. The run hash `P{q}:wr:<run>`
//! holds `w` workflow, `s` state (`running`, `done`, `failed`), `c` created,
//! `e` error, `n` steps, `nd` steps done, and per step `i`: `nm<i>` name,
//! `a<i>`/`x<i>` the steps it takes and the steps that take it, `m<i>`/`p<i>`
//! max attempts and priority, `f<i>` the start of its failure message,
//! `k<i>.<j>` the bytes of its payload around its inputs, `t<i>` its task
//! once enqueued, `o<i>` its output once done.
//!
//! **A step's `done` ack advances its run in the same script**: the ack
//! script marks the task done, stores the output in the run, and for every
//! dependent whose inputs are now all there writes its task — payload
//! included — and records it in `t<i>`. The payload is codec-specific, and
//! Lua has no codec, so the codec work is done in Rust around the script:
//! - at `start_run`, each step's payload is encoded (by
//!   `workflow::step_task`) with recognisable sentinel inputs and cut where
//!   their encodings are, giving the parts `k<i>.<j>` around the inputs;
//! - a `done` ack of a step task carries, besides the raw result, the result
//!   encoded as a payload element (`Bytes`), which is what is stored in `o<i>`
//!   and spliced between the parts. The backend knows which jobs are
//!   workflows because the claim script flags step tasks.
//!
//! The script's concatenation is byte for byte what `step_task` would
//! encode for every codec whose encoding of a value is the concatenation of
//! its fields' encodings (JSON, MessagePack, bincode): this is checked once
//! per codec, and `start_run` refuses another codec with
//! [`Error::Config`](errand_runtime::Error::Config) rather than build wrong
//! payloads.
//!
//! This was chosen over "the ack script returns the ready steps, a second
//! script enqueues them behind an idempotency guard" because there is no
//! crash window at all: if the process dies before the ack script runs, the
//! step is still `running` and is rescued and run again (at least once, like
//! any task); once it has run, the output and the next steps are all
//! written. A repeated ack (a lost reply) finds the task no longer running
//! for the worker and is ignored, so no step is enqueued twice. The
//! two-script design needs a sweeper to finish advances cut short by a
//! crash, and until it runs the dependents wait.
//!
//! A step task that goes `dead` — acked dead, rescued on its last attempt,
//! or buried as unserved — fails the run in the same script with
//! `step `name` failed: <error>`, and cancels the run's other live steps;
//! running ones are reported through `cancelled_tasks`, so their
//! cancellation token fires. A run is `done` once every step is done.
//!
//! Workflow limitations: a finished run (and its outputs) expires the
//! retention after it finished; its step tasks are pruned like any done
//! task, so `run_info` of an old but still running run can show a step whose
//! task is gone without a state (its output stays in the run). Cancelling one
//! step's task from a dashboard does not fail its run (the run then never
//! finishes), as with the in-memory backend; retrying a dead step does not
//! revive a failed run. Outputs are stored encoded as payload elements: with
//! JSON, an array of numbers, about 3.5 times the output's size.
//!
//! # Guarantees and limitations
//!
//! - At-least-once: a claim, an ack, a heartbeat, a rescue, a release, a
//!   cancel and a retry are each one Lua script, so a crash never leaves a
//!   task half-moved. A claim whose reply is lost (the connection dropped
//!   after the script ran) is redelivered by the same worker's next claim.
//! - Run times use the clocks of the processes that enqueue and claim:
//!   keep them in sync (NTP). Heartbeat expiry uses the server's clock.
//! - Unique keys are scoped to the job within its queue (as on every backend:
//!   to the job), not to the whole prefix. A `unique_for`
//!   window keeps the finished task (and its key) at least that long.
//!   Retrying a dead task does not take its unique key back.
//! - `done` tasks are kept for the retention (a `unique_for` window keeps
//!   one longer), then pruned from the queue's hashes, the done bitmaps and
//!   the `done` count by the next ack calls (two `x` entries per call) and
//!   rescue rounds (twenty per queue); reads leave them out as soon as the
//!   retention has passed, the count may briefly include them.
//!   `dead` and `cancelled` tasks are kept until retried.
//! - Listing `pending`, `retry` or `running` tasks reads every waiting or
//!   in-flight task of the queue (counts are O(1)); listing finished tasks
//!   walks their index.
//! - A Redis Cluster client is not wired in yet: the key layout is ready for
//!   one (one slot per queue), the connection is a single-node one.
//! - No command runs per task on the way through: an enqueue call of up to
//!   500 tasks is one `HSET` of their records and one `ZADD` to the ready
//!   set (a task with a unique key adds a `GET`, a `SET` and its own
//!   `HSET`); a claim is `ZRANGE` and `ZREMRANGEBYRANK`, an `HMGET` of the
//!   records and one of the states, an `HSET` of the new states and an
//!   `SADD` to the in-flight set;
//!   a `done` ack is an `SMISMEMBER` of the in-flight set, an `HMGET` and an
//!   `HSET` of the states, a `BITFIELD` of the done bitmap and one `x`
//!   entry.
//!   Only workflow steps and tasks with a unique key (listed in
//!   `sp:<worker>` by the claim) have their record read by the ack.
//!   Throughput is bound by Redis running these scripts on one core; see
//!   `examples/measure.rs` for figures. A waiting task with a small payload
//!   takes about 230 bytes (its record about 90, its ready-set entry 120).
//! - Cancelling a running task, or reading one, looks for its worker among
//!   the queue's registered workers (one `SISMEMBER` each). A worker
//!   registers with its first heartbeat (the runtime's workers beat before
//!   claiming): a task cancelled while its worker is not registered is not
//!   reported to it, and its ack is ignored.
//! - Needs Redis 6.2 or later (`SMISMEMBER`, `ZRANGE … WITHSCORES` in scripts),
//!   or a compatible server with Lua scripting (Valkey, KeyDB, Dragonfly).

mod backend;
mod expose;
mod keys;
mod record;
mod reply;
mod scripts;
mod wake;
mod workflow;

pub use backend::{RedisBackend, RedisBuilder};
