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
//! | `P{q}:seq` | string | the queue's task counter |
//! | `P{q}:t:<seq>` | hash | one task: `j` job, `s` state, `a` attempt, `m` max attempts, `pr` priority, `r` run_at (ms), `c` created (ms), `f` finished (ms), `u`/`uf` unique key and window, `e` last error, `w` worker, `p` payload, `o` output |
//! | `P{q}:r:<job>` | sorted set | ready tasks of a job; score `-priority`, member `run_at`(13 digits)`seq`(12 digits), so `ZPOPMIN` takes the highest priority, then the earliest `run_at`, then the oldest |
//! | `P{q}:d:<job>` | sorted set | delayed tasks (pending in the future, and retries) by `run_at` in ms |
//! | `P{q}:done`, `:dead`, `:cancelled` | sorted sets | finished tasks by seq (for listings; `done` is pruned as task hashes expire) |
//! | `P{q}:n` | hash | task counts per state |
//! | `P{q}:jobs` | set | job names seen on the queue |
//! | `P{q}:u:<key>` | string | unique key → seq of the task holding it |
//! | `P{q}:w`, `P{q}:wi` | sorted set, hash | workers by last heartbeat; their job, concurrency and start |
//! | `P{q}:hb:<worker>` | string with TTL `orphan_after` | the worker's heartbeat |
//! | `P{q}:if:<worker>` | set | the worker's in-flight tasks |
//! | `P{q}:lc:<worker>` | list | the worker's last claim (redelivered if its reply was lost) |
//! | `P{~}:queues`, `P{~}:queue-ids`, `P{~}:queue-seq` | hashes, string | the queue registry |
//!
//! Wake-ups go over the pub/sub channel `Pwake` (the message is the queue's
//! name); a backend opens one subscription connection once a worker waits.
//!
//! A task id is `queue number << 40 | seq`: ids are unique under one prefix,
//! ascending within a queue, and listed by ascending id across queues.
//!
//! # Guarantees and limitations
//!
//! - At-least-once: a claim, an ack, a heartbeat, a rescue, a release, a
//!   cancel and a retry are each one Lua script, so a crash never leaves a
//!   task half-moved. A claim whose reply is lost (the connection dropped
//!   after the script ran) is redelivered by the same worker's next claim.
//! - Run times use the clocks of the processes that enqueue and claim:
//!   keep them in sync (NTP). Heartbeat expiry uses the server's clock.
//! - Unique keys are scoped to a queue, not to the whole prefix. A `unique_for`
//!   window keeps the finished task (and its key) at least that long.
//!   Retrying a dead task does not take its unique key back.
//! - `done` tasks expire after the retention (`PEXPIREAT` on the task hash);
//!   the done index and the `done` count catch up as workers prune it (on
//!   every ack and rescue), so the count may briefly include expired tasks.
//!   `dead` and `cancelled` tasks are kept until retried.
//! - Listing `pending`, `retry` or `running` tasks reads every waiting or
//!   in-flight task of the queue (counts are O(1)); listing finished tasks
//!   walks their index.
//! - A Redis Cluster client is not wired in yet: the key layout is ready for
//!   one (one slot per queue), the connection is a single-node one.
//! - Needs Redis 6.2 or later (`ZRANGE … WITHSCORES` in scripts, `PEXPIREAT`),
//!   or a compatible server with Lua scripting (Valkey, KeyDB, Dragonfly).

mod backend;
mod expose;
mod keys;
mod reply;
mod scripts;
mod wake;

pub use backend::{RedisBackend, RedisBuilder};
