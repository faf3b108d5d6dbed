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
//! # Settings
//!
//! | setting | default | builder method |
//! |---|---|---|
//! | key prefix | `errand:` | [`RedisBuilder::namespace`] |
//! | codec | JSON | [`RedisBuilder::codec`] |
//! | `done` tasks and finished runs kept | 24 h | [`RedisBuilder::tuning`]: [`Tuning::retention`] |
//! | rescue after no heartbeat for | 30 s | [`RedisBuilder::tuning`]: [`Tuning::orphan_after`] |
//! | idle poll (fallback only) | 5 s | [`RedisBuilder::tuning`]: [`Tuning::poll_interval`] |
//! | claimed tasks held beyond the running ones | the worker's concurrency | [`RedisBuilder::tuning`]: [`Tuning::buffer`] |
//! | one call's timeout | 10 s | [`RedisBuilder::response_timeout`] |
//!
//! # Key layout
//!
//! With namespace (key prefix) `P` (default `errand:`), every key of queue
//! `q` starts with `P{q}:` — the queue's name is the hash tag, so a queue
//! lives in one Redis Cluster slot and every script touches that slot only:
//!
//! | key | type | what |
//! |---|---|---|
//! | `P{q}:seq` | string | the queue's task counter (one `INCRBY` per enqueue call) |
//! | `P{q}:t` | hash | field `<seq>` → the task's record, written once at enqueue: flags, priority, max attempts, created and run_at (ms), job, then, if set, unique key and window, workflow run and step, trace context, then the payload (binary, big-endian; the scripts read it with Lua's `struct`; see [Trace context](#trace-context)) |
//! | `P{q}:s` | hash | field `<seq>` → the task's state once first claimed: a letter (`p`ending, `r`unning, `y` retry, `d`one, `x` dead, `c`ancelled), the attempt, `\|` run_at if it changed; for a finished task `\|` finished (ms), for a done one then `\|` its output (not for a workflow step: its output is kept once, in its run). No field: pending, attempt 0 |
//! | `P{q}:e` | hash | field `<seq>` → the task's last error |
//! | `P{q}:g` | hash | field `<seq>` → the latest progress its current attempt reported: `<percent>\|<message>` (see [Progress](#progress)) |
//! | `P{q}:r:<job>` | sorted set | ready tasks of a job; score `-priority`, member `run_at`(13 digits, clamped to 1970–2286)`seq`(12 digits, or 13 above 10¹²), so the first by rank are the highest priority, then the earliest `run_at`, then the oldest |
//! | `P{q}:d:<job>` | sorted set | delayed tasks (pending in the future, and retries) by `run_at` in ms |
//! | `P{q}:done:<block>` | string (bitmap) | done tasks: bit `seq % 100000` of block `seq / 100000` (for listings; one `BITFIELD` per block and ack call sets them) |
//! | `P{q}:db` | sorted set | the blocks that hold done tasks, scored by block (an emptied block is deleted) |
//! | `P{q}:dead`, `:cancelled` | sorted sets | dead and cancelled tasks by seq (for listings) |
//! | `P{q}:x` | sorted set | when done tasks expire: a member lists the seqs (comma separated) of the tasks one ack call finished, scored by their expiry (finished + the acking handle's retention, or the end of a longer `unique_for` window), so the purge costs one entry per ack call, not one per task |
//! | `P{q}:n` | hash | task counts per state |
//! | `P{q}:jobs` | set | job names seen on the queue |
//! | `P{q}:u:<job>:<key>` | string | unique key (scoped to the job) → seq of the task holding it |
//! | `P{q}:w`, `P{q}:wi` | sorted set, hash | workers by last heartbeat (the server's `TIME`, ms); their job, concurrency and start |
//! | `P{q}:hb:<worker>` | string with TTL `orphan_after` | the worker's heartbeat |
//! | `P{q}:sv` | hash | job → when a worker of it last beat on the queue (the server's `TIME`, ms); kept after the workers are gone: what "served" means |
//! | `P{q}:if:<worker>` | set | the worker's in-flight tasks |
//! | `P{q}:cl:<worker>` | hash | the worker's claims: `floor` (claims with a lower token take nothing), `top` (the highest token that ran), `rescued` (set by a rescue until the worker beats again), and per claim that handed out tasks, its token → their seqs (comma separated) until the worker confirms it received them; kept a day after the worker's last claim, release or rescue; see [Guarantees](#guarantees-and-limitations) |
//! | `P{q}:sp:<worker>` | set | the worker's running tasks whose ack reads their record (workflow steps, unique keys) |
//! | `P{q}:cx:<worker>` | set | the worker's running tasks cancelled meanwhile (read by `cancelled_tasks`) |
//! | `P{q}:wseq` | string | the queue's workflow run counter |
//! | `P{q}:wr:<run>` | hash | one workflow run; see [Workflows](#workflows) |
//! | `P{q}:wl` | sorted set | the queue's workflow runs (member and score: the run number), for listings; see [Listing runs](#listing-runs) |
//! | `P{q}:wx` | sorted set | finished runs (member: the run number) by when their hash expires (finished + retention, ms): what the purge takes out of `wl` |
//! | `P{q}:paused` | string | exists while the queue is paused (see [Pausing](#pausing-a-queue)) |
//! | `P{~}:queues`, `P{~}:queue-ids`, `P{~}:queue-seq` | hashes, string | the queue registry |
//! | `P{~}:schedules` | hash | schedule → the last tick enqueued for it (ms, a decimal integer; see [Schedules](#schedules)) |
//!
//! Wake-ups go over the pub/sub channel `Pwake` (the message is the queue's
//! name: enqueues, retries, rescues, releases and resuming a paused queue
//! send one); a backend opens one subscription connection once a worker
//! waits.
//! Backends with different namespaces share nothing.
//!
//! A task is a field in a few per-queue hashes rather than a key of its own,
//! so a claim or an ack of a whole batch is a handful of multi-field
//! commands (`HMGET`, `HSET`, `SADD`, `BITFIELD`), whatever the batch's
//! size.
//! A task's running worker is the one whose `if:<worker>` set holds it.
//!
//! A task id is `queue number << 40 | seq`: ids are unique under one
//! namespace, ascending within a queue (with gaps where an enqueue found a
//! duplicate), and listed by ascending id across queues. A workflow run id
//! is built the same way from the queue of its steps and its run number.
//!
//! # Workflows
//!
//! [`RedisBackend`] implements
//! [`WorkflowStore`](errand_runtime::workflow::WorkflowStore). Every step is
//! a task of job `Workflow::NAME` on the workflow's queue, so a run lives in
//! one hash slot with its tasks. `start_run` checks the graph with the
//! runtime's planner ([`Graph`](errand_runtime::workflow::plan::Graph):
//! steps may be declared in any order) and writes the run hash and the
//! tasks of the entry steps (their payloads from
//! [`RunProgress::start`](errand_runtime::workflow::plan::RunProgress::start))
//! in one script. The run hash `P{q}:wr:<run>` holds `w` workflow, `s` state
//! (`running`, `done`, `failed`), `c` created, `e` error, `fin` finished,
//! `n` steps, `sk` the sink steps, and per step `i`: `nm<i>` name,
//! `a<i>`/`x<i>` the steps it takes and the steps that take it (the graph's `after` and
//! `dependents`), `m<i>`/`p<i>` max attempts and priority, `f<i>` the start
//! of its failure message (`step `name` failed: `), `k<i>.<j>` the bytes of
//! its payload around its inputs, `t<i>` its task once enqueued, `o<i>` its
//! output once done; and `tr` the run's trace context, when it was started
//! with one ([`NewRun::trace`](errand_runtime::workflow::NewRun::trace)),
//! which the task of every step carries: the entry steps' written by
//! `start_run`, the others' by the ack script that makes them ready.
//!
//! **A step's `done` ack advances its run in the same script**, as the
//! planner would: the ack script marks the task done, stores the output in
//! the run (a repeated `done` changes nothing), writes the task — payload
//! included — of every dependent whose inputs are now all there and that
//! has no task yet, records it in `t<i>`, and marks the run `done` once
//! every sink step is done. The payload is codec-specific, and Lua has no
//! codec, so the codec work is done in Rust around the script:
//! - at `start_run`, the payload the planner encodes for each step with
//!   recognisable sentinel inputs is cut where their encodings are, giving
//!   the parts `k<i>.<j>` around the inputs;
//! - a `done` ack of a worker that runs a workflow's steps
//!   ([`WorkerRegistration::workflow_steps`](errand_runtime::backend::WorkerRegistration::workflow_steps))
//!   carries, instead of the raw result, the result encoded as a payload
//!   element ([`Bytes`](errand_runtime::workflow::Bytes)), which is what is
//!   stored in `o<i>` and spliced between the parts. The output is stored
//!   once: the step task's `done` state keeps no copy, and reading the task
//!   ([`Expose::task`](errand_runtime::Expose::task), `result`) gives the
//!   run's while the run is kept.
//!
//! The script's concatenation is byte for byte what the planner would
//! encode for every codec whose encoding of a value is the concatenation of
//! its fields' encodings (JSON, MessagePack, bincode): this is checked once
//! per codec, and `start_run` refuses another codec with
//! [`Error::Config`] rather than build wrong payloads.
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
//! A step task that ends other than `done` — acked dead, rescued on its last
//! attempt, buried as unserved, claimed with an unreadable record, or
//! cancelled — fails the run in the same script with `step `name` failed:
//! <error>`, and cancels the run's other live steps; running ones are
//! reported through `cancelled_tasks`, so their cancellation token fires. No step is
//! enqueued for a failed run. The ack script reads and checks everything a
//! step's advance needs before it writes any of it: a run hash it cannot
//! read fails the run (`its workflow run cannot be read: …`) instead of
//! advancing it.
//!
//! [`run_info`](errand_runtime::workflow::WorkflowStore::run_info) reads a
//! run and its steps in one script; each step's
//! [`StepInfo::after`](errand_runtime::workflow::StepInfo::after) names the
//! steps it takes, from the run's `a<i>` fields (the graph's `after`, in
//! argument order).
//!
//! ## Listing runs
//!
//! [`run_ids`](errand_runtime::workflow::WorkflowStore::run_ids) (and the
//! runtime's `runs` on top of it) reads the queues' run indexes: `start_run`
//! adds each run to its queue's `wl` sorted set (in the same script that
//! writes it), scored by its run number. A run id orders by queue number,
//! then run number, so newest first is the queues from the highest number
//! down, each walked from its newest run (`ZREVRANGEBYSCORE`, below the
//! `before` run's number in its queue) until the page is full: one script
//! call per queue visited, which filters by workflow (`w`) and run state
//! (`s`) on the run hash (one `HMGET` per run looked at). A queue whose job
//! set never saw the workflow is skipped at once; otherwise a filter is
//! applied while walking, not through an index of its own, so a rare
//! workflow or state on a queue with many runs reads every run on the way —
//! a script call looks at 1,000 index entries at most and the next call
//! goes on from there, so that such a walk never holds the server for long.
//! A run that finishes notes in `wx` when its hash expires; the purge (see
//! [Guarantees](#guarantees-and-limitations), Retention) takes expired runs
//! out of `wl` (and `wx`) in the same script as the queue's done tasks,
//! about 5,000 per queue and call; an entry whose run hash is already gone
//! when a listing meets it is skipped and dropped by that listing. Runs
//! started by a version without the index are not listed (`run_info` still
//! reads them).
//!
//! Workflow limitations: a finished run (and its outputs) expires by itself
//! the retention after it finished (`PEXPIRE`, by the server's clock); its
//! step tasks are purged like any done task, so `run_info` of an old but
//! still running run can show a step whose task is gone without a state
//! (its output stays in the run). Retrying a dead or cancelled step does not
//! revive a failed run. A step task whose own record cannot be read at all
//! cannot name its run: it goes dead, and its run is failed only if the
//! record still shows the run (the scripts read records more leniently than
//! the backend, which refuses unknown flags). Outputs are stored encoded as
//! payload elements: with JSON, an array of numbers, about 3.5 times the
//! output's size.
//!
//! # Trace context
//!
//! A task's trace context
//! ([`NewTask::trace`](errand_runtime::backend::NewTask::trace), at most
//! [`MAX_TRACE_LEN`](errand_runtime::backend::MAX_TRACE_LEN) bytes; a longer
//! one is not stored) is part of its record: flag `4`, then its length (2
//! bytes) and its bytes, after the unique key and the workflow run and
//! before the payload. The claim script returns the record as it is, so the
//! context comes back with every claim (retries included: the record never
//! changes) at no extra command; a task without one stores nothing more (the
//! flag is clear), and records written before trace contexts existed, which
//! never have the flag, read as without one. A trace context alone does not
//! make the ack read a task's record. A workflow run stores its context in
//! its hash (`tr`, see [Workflows](#workflows)) and every step's task record
//! carries it. Versions before this one refuse a record with the flag as
//! unreadable (unknown flags): upgrade every process before enqueueing traced
//! tasks.
//!
//! # Progress
//!
//! [`Backend::record_progress`](errand_runtime::Backend::record_progress)
//! (what [`TaskCx::progress`](errand_runtime::TaskCx::progress) reports,
//! throttled by the worker) is one script call per batch: it writes the
//! progress of each task that is still running for the reporting worker
//! (in its `if:<worker>` set and in state `running`) into the queue's `g`
//! hash, and drops the others — a report that arrives after the task was
//! acked, rescued, released or cancelled changes nothing. The claim that
//! starts an attempt deletes the task's progress (one `HDEL` per claim for
//! the batch), so each attempt starts from none; the last report of a
//! finished task is kept with it until the task is purged.
//! [`Expose::task`](errand_runtime::Expose::task) and
//! [`tasks`](errand_runtime::Expose::tasks) return it as
//! [`TaskInfo::progress`](errand_runtime::TaskInfo::progress); a stored
//! value this version cannot read (not `<percent>|<message>` with a percent
//! of 0 to 100 and a UTF-8 message) is an error naming the task.
//!
//! # Deleting tasks
//!
//! [`Expose::delete_task`](errand_runtime::Expose::delete_task) is one
//! script: a `done`, `dead` or `cancelled` task that is not a workflow step
//! (its record's flags say so, even when the rest of the record cannot be
//! read) leaves the `t`, `s`, `e` and `g` hashes, the done bitmap (its bit
//! cleared; an emptied block deleted) or the `dead` / `cancelled` index,
//! and its state's count; its unique key is deleted if it still names the
//! task (a `unique_for` window keeps it past the finish), so the key is free
//! again. A done task's `x` entry is left to the purge, which finds nothing
//! of it (it counts only the bits it clears). A live task, a step's task
//! (it goes with its run) and an unknown id are left alone: `false`.
//!
//! # Pausing a queue
//!
//! [`Expose::pause_queue`](errand_runtime::Expose::pause_queue) registers
//! the queue and sets its `P{q}:paused` key;
//! [`resume_queue`](errand_runtime::Expose::resume_queue) deletes it (a
//! script that, if the key was there, publishes a wake-up so that idle
//! workers of every process claim at once). Both are idempotent. The claim
//! script looks the key up (`EXISTS`, in the queue's own slot) before it
//! takes anything, so a pause holds in every process from the next claim
//! on: a paused queue hands out no task and no `next_due`, moves no delayed
//! task, and only redelivers the tasks of the worker's lost claims, which
//! are running for it already. Runs already started finish; enqueueing
//! still works. [`Expose::counts`](errand_runtime::Expose::counts) lists
//! every registered queue, a paused one with
//! [`QueueCounts::paused`](errand_runtime::QueueCounts::paused) set, even
//! when it holds no task.
//!
//! # Schedules
//!
//! [`RedisBackend`] implements
//! [`Schedules`](errand_runtime::capability::Schedules): each tick of a
//! schedule is enqueued with a unique key (so processes running the same
//! schedule enqueue it once), and the last tick enqueued is kept in the
//! `P{~}:schedules` hash. `record_tick` is a script that keeps the later of
//! the stored tick and the new one, compared as decimal integers (exact for
//! every `i64`), so processes racing to record never move it back;
//! `last_tick` is one `HGET`. A stored tick that is not a decimal integer is
//! an error naming the schedule, for both (recording writes nothing then).
//!
//! # Guarantees and limitations
//!
//! - At-least-once: a claim, an ack, a heartbeat, a rescue, a release, a
//!   cancel, a retry, a deletion, a burial and a purge are each one Lua
//!   script, so a crash never leaves a task half-moved.
//! - **Scripts never stop half-way.** Redis does not undo the writes of a
//!   script that raises an error, so no script raises after its first write
//!   (see `scripts/common.lua`): stored data is read through helpers that
//!   report what they cannot read instead of raising, and every value a
//!   script hands to a command was checked first. A record it cannot
//!   decode, a malformed state value, a ready-set entry this version did not
//!   write, a workflow run hash with missing fields, a count that is not an
//!   integer are handled (the task goes dead with the read error, the entry
//!   is dropped, the run fails, the count is left as it is). The only error
//!   replies come before any write: retrying a task whose record cannot be
//!   read, and a full queue registry. Redis itself does not stop a script
//!   that has written: an out-of-memory server refuses a script's first
//!   write, not a later one. The scripts trust the types of their keys: a
//!   key of the wrong type (written by something else) fails the call.
//! - **Lost claims.** Every claim carries a token, ascending per backend
//!   handle, and the claim script keeps the tasks it handed out under that
//!   token in `cl:<worker>` until a later claim of the worker confirms they
//!   arrived. A claim whose call failed may have run with only its reply
//!   lost: the worker's next claims send its token, and the script hands
//!   its tasks (those still running for the worker) out again. It may also
//!   not have run *yet*: queued behind a connection that broke, it can
//!   reach the server after a later claim. So every claim also sends the
//!   worker's floor, the lowest token it still awaits an answer to; the
//!   script keeps the highest floor it saw, and a claim below it takes
//!   nothing and writes nothing. A release raises the floor above every
//!   token the handle gave out, and a rescue above the highest that ran
//!   and marks the worker rescued: until it beats again, none of its claims
//!   takes anything. A claim the worker gave up can never leave tasks
//!   `running` for a worker that will not hear of them.
//! - **Unreadable data never blocks a queue.** A claimed task whose record
//!   or state value this version cannot read goes `dead` with the read
//!   error (a second script, right after the claim, guarded by "still
//!   running for this worker") and never runs; the worker goes on. If that
//!   script fails, the whole claim is redelivered by the worker's next
//!   claim, which tries again. A due delayed task whose record cannot be
//!   read is made ready at once so that a claim buries it. An ack whose
//!   task's state value, or record (read for workflow steps and tasks with
//!   a unique key), cannot be read sends that task `dead` with the read
//!   error and records the rest of its batch. A running task that a release
//!   or a rescue cannot put back (its record or state value cannot be read)
//!   goes `dead` saying so. A waiting task buried because its state value
//!   was corrupted leaves the count of the state its letter names (pending
//!   for an unknown letter).
//! - Reads are checked: a malformed record or state value, or a count that
//!   is not a non-negative integer, is an error naming the task or the
//!   queue.
//! - **Clocks.** Liveness is the server's: a heartbeat stores Redis's
//!   `TIME` (in `w` and `sv`) and sets `hb:<worker>`, which expires after
//!   `orphan_after` by the server's clock; rescue compares with `TIME` and
//!   needs that key gone; [`Expose::workers`](errand_runtime::Expose::workers)
//!   lists the workers that beat within `orphan_after` of `TIME`, with the
//!   server's time as their `last_seen`. No host's clock is compared with
//!   another's for liveness: workers on a host whose clock is off are not
//!   taken for dead. The times stored for tasks (`created_at`, `run_at`,
//!   when a task finished, when a done task expires) come from each
//!   process's [`Tuning::clock`]: a delayed task is due once the claiming
//!   process's clock reaches its `run_at`, so keep the hosts' clocks in sync
//!   (NTP) for delays and retention to be exact.
//! - **Served jobs.** Every heartbeat records in `sv` when the job of its
//!   worker was last served on the queue, by the server's clock; the record
//!   outlives the worker (a release or a rescue leaves it).
//!   `unserved(queue, since)` and `bury_unserved` send `since` as an age by
//!   this process's clock, which the script subtracts from `TIME`, so hosts
//!   whose clocks disagree judge "served since" alike. Each call of the
//!   bury script (one bounded batch) checks first that the job is still
//!   unserved, in the same script as the burial.
//! - **Retention.** `done` tasks are kept for the retention of the handle
//!   that acked them (a `unique_for` window keeps one longer), then
//!   `purge_expired` deletes them from the queue's hashes, the done bitmaps
//!   and the `done` count: one script per queue, pipelined, about 5,000
//!   tasks per queue and call. A handle purges at most every 10 s (or every
//!   quarter of a shorter retention) unless its last purge left expired
//!   tasks behind; acks and rescue rounds never purge. Reads leave a done
//!   task out once the reader's retention has passed since it finished;
//!   counts include it until it is purged. A finished workflow run expires
//!   by itself (see [Workflows](#workflows)); the purge only takes the
//!   expired runs out of the run index (see [Listing runs](#listing-runs)).
//!   `dead` and `cancelled` tasks are kept until retried or deleted,
//!   whatever the retention. A retention of 2^52 ms
//!   (142,000 years) or more, e.g. `Duration::MAX`, keeps finished work:
//!   nothing gets an expiry.
//! - **Failures.** A Redis call that fails (a cut connection, a timeout
//!   after [`RedisBuilder::response_timeout`]) is an error for that call;
//!   the connection is re-established by the next calls, and the runtime
//!   retries with backoff. What a failed call may have done is made safe: a
//!   lost claim is redelivered or refused (above), a repeated ack applies
//!   only to tasks still running for the worker, a failed purge runs again
//!   on the next call. Scripts are loaded again after `NOSCRIPT` (a server
//!   restarted, a `SCRIPT FLUSH`); what a restarted server kept depends on
//!   its persistence (AOF, RDB). This crate's tests cut the connections
//!   through a proxy for 1 s during claims and acks, for longer than
//!   `orphan_after` under three workers, and for 3 s during a drain with
//!   workflows, and run several worker processes with one killed part-way;
//!   the full-size run of that last one is
//!   `ERRAND_LOAD_PROCESSES=10 ERRAND_LOAD_TASKS=100000 cargo test --release -p errand-redis --test load`
//!   (4 processes × 20,000 tasks by default).
//! - Unique keys are scoped to the job within its queue (as on every backend:
//!   to the job), not to the whole namespace. A `unique_for`
//!   window keeps the finished task (and its key) at least that long.
//!   Retrying a dead task does not take its unique key back.
//! - Listing `pending`, `retry` or `running` tasks reads every waiting or
//!   in-flight task of the queue (counts are O(1)); listing finished tasks
//!   walks their index.
//! - A Redis Cluster client is not wired in yet: the key layout is ready for
//!   one (one slot per queue), the connection is a single-node one.
//! - No command runs per task on the way through: an enqueue call of up to
//!   500 tasks is one `HSET` of their records and one `ZADD` to the ready
//!   set (a task with a unique key adds a `GET`, a `SET` and its own
//!   `HSET`); a claim is `ZRANGE` and `ZREMRANGEBYRANK`, an `HMGET` of the
//!   records and one of the states, an `HSET` of the new states, an `SADD`
//!   to the in-flight set, an `HSET` of its token in `cl:<worker>`, an
//!   `EXISTS` of the queue's `paused` key and an `HDEL` of the claimed
//!   tasks' progress;
//!   a `done` ack is an `SMISMEMBER` of the in-flight set, an `HMGET` and an
//!   `HSET` of the states, an `SREM` from the in-flight set, a `BITFIELD` of
//!   the done bitmap and one `x` entry.
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
//!
//! The shape this crate shares with the other backends is described in the
//! project's `docs/architecture.md`.

mod ack;
mod backend;
mod claim;
mod connect;
mod expose;
mod keys;
mod pipeline;
mod progress;
mod purge;
mod push;
mod queues;
mod record;
mod reply;
mod schedules;
mod scripts;
mod wake;
mod workers;
mod workflow;

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use errand_runtime::backend::{Every, Notifier};
use errand_runtime::capability::{CancelRunning, Delays, Priorities, Results, UniqueKeys};
use errand_runtime::{Buffer, Codec, Error, JsonCodec, Timestamp, Tuning};
use redis::aio::ConnectionManager;
use tokio_util::sync::CancellationToken;

use crate::claim::ClaimBooks;
use crate::keys::Keys;
use crate::queues::Queues;
use crate::scripts::Scripts;

/// The backend's own defaults: rescue after 30 s, keep finished work 24 h,
/// poll every 5 s (wake-ups come through pub/sub; the poll only covers a
/// lost one), and hold as many claimed tasks as the worker's concurrency
/// beyond its running ones (a claim is a round trip and a script run
/// whatever its size: on a busy queue, fetch full batches ahead of the free
/// slots).
const DEFAULT_TUNING: Tuning = Tuning::new().poll_interval(Duration::from_secs(5)).buffer(Buffer::Concurrency);

/// The default namespace (key prefix).
const DEFAULT_NAMESPACE: &str = "errand:";

/// The default timeout of one Redis call.
const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// The Redis backend; see the [crate docs](crate).
///
/// A cheap handle: clone it for every worker and enqueuer of the process. All
/// clones share one multiplexed connection (a [`ConnectionManager`] that
/// reconnects by itself) and, once a worker waits, one pub/sub connection.
pub struct RedisBackend<C: Codec = JsonCodec> {
    inner: Arc<Inner>,
    _codec: PhantomData<fn() -> C>,
}

impl<C: Codec> Clone for RedisBackend<C> {
    fn clone(&self) -> Self {
        Self { inner: Arc::clone(&self.inner), _codec: PhantomData }
    }
}

impl<C: Codec> fmt::Debug for RedisBackend<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("url", &self.inner.url)
            .field("namespace", &self.inner.namespace)
            .field("codec", &C::NAME)
            .field("tuning", &self.inner.tuning)
            .finish_non_exhaustive()
    }
}

/// What the clones of one backend share.
struct Inner {
    conn: ConnectionManager,
    client: redis::Client,
    /// The URL without its password, for messages.
    url: String,
    namespace: String,
    keys: Keys,
    channel: String,
    tuning: Tuning,
    scripts: Scripts,
    queues: Queues,
    notifier: Notifier,
    /// Whether the wake-up listener was started.
    listening: AtomicBool,
    stop_listener: CancellationToken,
    /// Per worker: its claims in flight, lost and confirmed (see `claim.rs`).
    claims: Mutex<ClaimBooks>,
    /// The claim token counter: tokens ascend per backend handle.
    claim_tokens: AtomicU64,
    /// Paces retention (see `purge.rs`).
    purge_every: Every,
    /// Whether the last retention pass left expired tasks behind: the next
    /// one runs at once.
    purge_more: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop_listener.cancel();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a plain map update: a panic inside one
    // cannot leave the map in a state worth refusing to continue.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Options for [`RedisBackend`]; see [`RedisBackend::builder`].
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use errand_redis::RedisBackend;
///
/// # async fn demo() -> Result<(), errand_runtime::Error> {
/// let backend = RedisBackend::builder()
///     .namespace("myapp:jobs:")
///     .tuning(|t| t.retention(Duration::from_secs(3600)))
///     .connect("redis://127.0.0.1:6379")
///     .await?;
/// # let _ = backend; Ok(()) }
/// ```
#[must_use]
pub struct RedisBuilder<C: Codec = JsonCodec> {
    namespace: String,
    tuning: Tuning,
    response_timeout: Duration,
    _codec: PhantomData<fn() -> C>,
}

impl<C: Codec> fmt::Debug for RedisBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBuilder")
            .field("namespace", &self.namespace)
            .field("codec", &C::NAME)
            .field("tuning", &self.tuning)
            .field("response_timeout", &self.response_timeout)
            .finish()
    }
}

impl<C: Codec> RedisBuilder<C> {
    /// The prefix of every key and of the wake-up channel (`errand:` by
    /// default). Backends with different namespaces share nothing. It must
    /// not contain `{` or `}`, which would break the per-queue hash tags
    /// (checked by [`connect`](Self::connect)).
    pub fn namespace(mut self, prefix: impl Into<String>) -> Self {
        self.namespace = prefix.into();
        self
    }

    /// Stores arguments and results with codec `C2` instead.
    pub fn codec<C2: Codec>(self) -> RedisBuilder<C2> {
        RedisBuilder {
            namespace: self.namespace,
            tuning: self.tuning,
            response_timeout: self.response_timeout,
            _codec: PhantomData,
        }
    }

    /// Changes the [`Tuning`], starting from this backend's defaults: rescue
    /// after 30 s without a heartbeat, keep `done` tasks (with their
    /// results) and finished workflow runs 24 h, poll every 5 s (enqueues
    /// wake idle workers at once through pub/sub, in every process, so the
    /// poll only matters if a wake-up is lost, e.g. while reconnecting), one
    /// claim at a time, and a buffer of the worker's concurrency
    /// ([`Buffer::Concurrency`]). `dead` and `cancelled` tasks are kept
    /// until retried or deleted, whatever the retention.
    pub fn tuning(mut self, tune: impl FnOnce(Tuning) -> Tuning) -> Self {
        self.tuning = tune(self.tuning);
        self
    }

    /// How long one Redis call may take before it fails (10 s by default).
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }
}

impl RedisBackend<JsonCodec> {
    /// Options: namespace, codec, [`Tuning`], timeout.
    pub fn builder() -> RedisBuilder<JsonCodec> {
        RedisBuilder {
            namespace: DEFAULT_NAMESPACE.to_owned(),
            tuning: DEFAULT_TUNING,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            _codec: PhantomData,
        }
    }

    /// Connects to `url` with the defaults (namespace `errand:`, JSON, the
    /// default [`Tuning`]); the same as `RedisBackend::builder().connect(url)`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a malformed URL; [`Error::Backend`] when the
    /// server cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::builder().connect(url).await
    }
}

impl<C: Codec> RedisBackend<C> {
    /// The namespace: the prefix of every key of this backend.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// The time by the [`Tuning::clock`]: what this process stores as now.
    fn now(&self) -> Timestamp {
        self.inner.tuning.clock.now()
    }

    fn conn(&self) -> ConnectionManager {
        self.inner.conn.clone()
    }

    /// The number of `queue`, registering it on first use.
    async fn queue_number(&self, queue: &str) -> Result<u32, Error> {
        self.inner.queues.number(&mut self.conn(), &self.inner.scripts.register, queue).await
    }

    /// The name of queue number `n`, if it exists.
    async fn queue_name(&self, n: u32) -> Result<Option<String>, Error> {
        self.inner.queues.name(&mut self.conn(), n).await
    }

    /// Every registered queue, by name, with its number.
    async fn all_queues(&self) -> Result<Vec<(String, u32)>, Error> {
        self.inner.queues.all(&mut self.conn()).await
    }
}

impl<C: Codec> Priorities for RedisBackend<C> {}
impl<C: Codec> UniqueKeys for RedisBackend<C> {}
impl<C: Codec> Delays for RedisBackend<C> {}
impl<C: Codec> Results for RedisBackend<C> {}
impl<C: Codec> CancelRunning for RedisBackend<C> {}
