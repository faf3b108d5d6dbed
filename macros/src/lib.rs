//! Procedural macros of [errand](https://docs.rs/errand): `#[job]`,
//! `#[workflow]`, `#[dag_step]` and `#[step]`. Use them through the `errand`
//! crate (`#[errand::job]`, `#[errand::workflow]`), which re-exports them and
//! provides the runtime their expansions refer to.

mod attr;
mod case;
mod ctxt;
mod duration;
mod job;
mod sig;
mod workflow;

use proc_macro::TokenStream;

/// Turns an `async fn` into a background job.
///
/// ```
/// use errand::prelude::*;
/// use errand::memory::MemoryBackend;
///
/// #[derive(Clone)]
/// struct Mailer;
///
/// impl Mailer {
///     async fn send(&self, to: &str, subject: &str) -> Result<u64, std::io::Error> {
///         Ok((to.len() + subject.len()) as u64)
///     }
/// }
///
/// #[errand::job(queue = "emails", retries = 5, backoff = "exponential(100ms, max = 1m)", timeout = "30s")]
/// async fn send_email(to: String, subject: String, mailer: Data<Mailer>) -> Result<u64, JobError> {
///     mailer.send(&to, &subject).await.map_err(JobError::retry)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), errand::Error> {
/// let backend = MemoryBackend::new();
/// let id = backend.enqueue(SendEmail::new("a@b.c".into(), "hi".into())).await?;
/// let watch = backend.clone();
/// Monitor::new()
///     .register(SendEmail::worker(&backend).data(Mailer).concurrency(8))
///     .run_until(async move {
///         // In a service: `tokio::signal::ctrl_c()`.
///         while watch.result::<SendEmail>(id).await.ok().flatten().is_none() {
///             tokio::time::sleep(Duration::from_millis(5)).await;
///         }
///     })
///     .await?;
/// assert_eq!(backend.result::<SendEmail>(id).await?, Some(7));
/// # Ok(())
/// # }
/// ```
///
/// Next to the function, which is left unchanged and stays callable (from
/// unit tests, say), this generates:
///
/// - `struct SendEmail { to: String, subject: String }`: the PascalCase of the
///   function's name, with the stored (not injected) parameters as fields, in
///   order, deriving `Serialize`, `Deserialize`, `Debug` and `Clone`. The
///   struct, its fields and its methods have the function's visibility.
/// - `SendEmail::new(to, subject)`, taking the fields positionally.
/// - `SendEmail::worker(&backend)`: a `WorkerBuilder` for this job, to which
///   `.data(...)`, `.concurrency(n)` and `.layer(...)` still apply.
/// - `impl errand::Job for SendEmail`, which names the job, sets its default
///   options and runs the function with the decoded arguments.
///
/// # Parameters
///
/// A parameter whose type is `Data<T>`, `TaskCx` or `WorkerCx` (matched by
/// the last path segment), or that is marked `#[inject]` (its type must
/// implement `FromTaskCx`), is *injected*: taken from the worker at run
/// time, not stored. Every `Data<T>` a job needs is checked when the
/// monitor starts its worker, so a worker missing `.data(value)` fails
/// before it claims a task. Every other parameter is *stored*: it must be a
/// plain name with an owned, `'static`, `Serialize + DeserializeOwned` type
/// (`String`, not `&str`).
///
/// The function returns `()` or `Result<T, E>` with `T: Serialize +
/// DeserializeOwned` (the stored output) and `E: Into<JobError>`.
///
/// # Attribute keys
///
/// All optional.
///
/// | key | value | default |
/// |-----|-------|---------|
/// | `name` | `"send_email"`: the name tasks are stored under | the function's name |
/// | `queue` | `"emails"` | `"default"` |
/// | `retries` | `5`: retries after the first run (up to 6 runs) | 20 |
/// | `backoff` | `"fixed(1s)"`, `"linear(1s, max = 1m)"`, `"exponential(100ms, factor = 2, max = 10m, jitter)"` | exponential from 1 s, doubling, at most 1 h, with jitter |
/// | `timeout` | `"30s"`: the longest one run may take | none |
/// | `priority` | `5`: an `i16`, higher runs first | 0 |
/// | `unique` | `"args"` (dedupe on every stored argument) or a key such as `"welcome:{to}"` over argument names (stored as `"send_email:welcome:a@b.c"`) | not unique |
/// | `unique_for` | `"1h"`: also dedupe against tasks created this recently | only live tasks |
/// | `crate` | `"my_app::errand"`: where errand is re-exported | `::errand` |
///
/// Durations are integers with units `ms`, `s`, `m`, `h`, `d`, and can be
/// concatenated: `"1m30s"`. `cron = "..."` is recognised but not supported in
/// this version (a compile error).
///
/// # Compile errors
///
/// Every mistake is reported at once, each pointing at the offending token:
/// an unknown key (with the nearest valid one suggested), a key given twice,
/// a malformed value, a function that is not `async`, generic, a method, or
/// that takes a borrowed argument:
///
/// ```text
/// error: job arguments are stored: use `String` instead of `&str`
///  --> src/jobs.rs:4:26
///   |
/// 4 | async fn send_email(to: &str) -> Result<(), JobError> {
///   |                         ^^^^
/// ```
///
/// ```compile_fail
/// #[errand::job]
/// async fn send_email(to: &str) {}
/// ```
///
/// ```compile_fail
/// // unknown key `retry`: did you mean `retries`?
/// #[errand::job(retry = 5)]
/// async fn send_email(to: String) {}
/// ```
///
/// Set `ERRAND_MACROS_DEBUG=1` while building to print each expansion to
/// stderr.
#[proc_macro_attribute]
pub fn job(attr: TokenStream, item: TokenStream) -> TokenStream {
    job::expand(attr.into(), item.into()).into()
}

/// Turns a module of step functions into a durable workflow: a graph of
/// `#[dag_step]`s ordered by `after`, or a pipeline of `#[step]`s in the
/// order written. Every step runs as its own task, retried on its own, on
/// whichever worker is free; a step runs once the steps it depends on are
/// done, with their outputs as its arguments.
///
/// ```
/// use errand::prelude::*;
/// use errand::memory::MemoryBackend;
/// use errand::workflow::WorkflowExt;
///
/// #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
/// pub struct User { id: u64, email: String }
///
/// #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
/// pub struct Report { message: u64, account: String }
///
/// pub struct Mailer;
///
/// #[errand::workflow(queue = "onboarding")]
/// mod onboarding {
///     use super::*;
///
///     #[dag_step] // no `after`: an entry step, it takes the workflow's input
///     async fn fetch_user(id: u64) -> Result<User, JobError> {
///         Ok(User { id, email: format!("user{id}@example.com") })
///     }
///
///     #[dag_step(after = fetch_user)]
///     async fn send_welcome(user: User, _mailer: Data<Mailer>) -> Result<u64, JobError> {
///         Ok(user.id * 10)
///     }
///
///     #[dag_step(after = fetch_user, retries = 10)]
///     async fn provision(user: User) -> Result<String, JobError> {
///         Ok(format!("acct-{}", user.id))
///     }
///
///     // Fan-in: the arguments are the outputs of `after`, in that order.
///     #[dag_step(after = [send_welcome, provision])]
///     async fn report(message: u64, account: String) -> Result<Report, JobError> {
///         Ok(Report { message, account })
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let backend = MemoryBackend::new();
/// let run = backend.start(onboarding::Onboarding::new(42)).await?; // the input: a u64
/// let mut report = None;
/// Monitor::new()
///     .register(onboarding::Onboarding::worker(&backend).data(Mailer))
///     .run_until(async { report = Some(backend.workflow(run).wait().await) })
///     .await?;
/// let report: Report = report.unwrap()?; // the output: what the sink step returns
/// assert_eq!(report, Report { message: 420, account: "acct-42".into() });
/// # Ok(())
/// # }
/// ```
///
/// Next to the step functions, which are left unchanged (minus their
/// markers), the macro generates inside the module:
///
/// - `struct Onboarding { input: u64 }`: the PascalCase of the module's name,
///   holding a run's input (a unit struct when no entry step takes one),
///   deriving `Debug` and `Clone`. It, its field and its methods are visible
///   wherever the module is.
/// - `Onboarding::new(input)`, to pass to `backend.start(...)`.
/// - `Onboarding::worker(&backend)`: a `WorkerBuilder` that runs every step
///   of the workflow, to which `.data(...)`, `.concurrency(n)` and
///   `.layer(...)` still apply. The `Data<T>` the steps need are checked
///   when the monitor starts it.
/// - `impl errand::Workflow for Onboarding`: the graph, each step's
///   options, and the glue that decodes a step's inputs, calls it and
///   encodes its output with the backend's codec.
///
/// # Steps
///
/// Each step is an `async fn` with the same rules as an
/// [`#[errand::job]`](macro@job) function: it returns `()` or `Result<T, E>`,
/// and its `Data<T>`, `TaskCx`, `WorkerCx` and `#[inject]` parameters are
/// injected. Its other parameters are its inputs:
///
/// - a step with no `after` is an *entry step*: it takes the workflow's
///   input (one parameter), or nothing. Every entry step that takes the
///   input takes the same type, which is the workflow's `Input`;
/// - a step with `after = [a, b]` takes one parameter per step in `after`:
///   the outputs of `a` and `b`, in that order;
/// - in a pipeline of `#[step]`s, the first step takes the input and every
///   other step the previous step's output (or nothing, to ignore it).
///
/// The run's output is the output of its sink step (the one nothing runs
/// after), or a tuple of the sinks' outputs in declaration order when there
/// are several. A step that fails for good (its retries used up, or
/// `JobError::abort`) fails the run, and the steps still to run are
/// cancelled. Steps are numbered, and stored, in declaration order.
///
/// # Attribute keys
///
/// On the module, all optional:
///
/// | key | value | default |
/// |-----|-------|---------|
/// | `name` | `"onboarding"`: the name runs and step tasks are stored under | the module's name |
/// | `queue` | `"onboarding"`: the queue of every step task | `"default"` |
/// | `crate` | `"my_app::errand"`: where errand is re-exported | `::errand` |
///
/// On each step: `after` (`#[dag_step]` only: `after = fetch_user` or
/// `after = [send_welcome, provision]`), and `retries`, `backoff`, `timeout`
/// and `priority` with the values and defaults of
/// [`#[errand::job]`](macro@job).
///
/// # Compile errors
///
/// The graph is checked when the crate is compiled, and every mistake is
/// reported at once: an `after` that names no step (with the nearest name
/// suggested), a cycle (`a → b → c → a`), a step whose number of inputs does
/// not match its `after`, two steps with one name, a module that mixes
/// `#[dag_step]` and `#[step]` or has no step, and every mistake
/// `#[errand::job]` reports on a function. A step that takes a `User` after
/// a step that returns a `MessageId`, or two entry steps that take different
/// types, get rustc's own "mismatched types" on the argument.
///
/// ```compile_fail
/// #[errand::workflow]
/// mod signup {
///     use errand::JobError;
///
///     #[errand::dag_step]
///     async fn create(email: String) -> Result<u64, JobError> { Ok(email.len() as u64) }
///
///     // error: no step named `creat` in this workflow: did you mean `create`?
///     #[errand::dag_step(after = creat)]
///     async fn welcome(id: u64) -> Result<(), JobError> { let _ = id; Ok(()) }
/// }
/// ```
///
/// ```compile_fail
/// #[errand::workflow]
/// mod signup {
///     use errand::JobError;
///
///     #[errand::dag_step]
///     async fn create(email: String) -> Result<u64, JobError> { Ok(email.len() as u64) }
///
///     // error[E0308]: mismatched types: expected `String`, found `u64`
///     #[errand::dag_step(after = create)]
///     async fn welcome(id: String) -> Result<(), JobError> { let _ = id; Ok(()) }
/// }
/// ```
///
/// Set `ERRAND_MACROS_DEBUG=1` while building to print each expansion to
/// stderr.
#[proc_macro_attribute]
pub fn workflow(attr: TokenStream, item: TokenStream) -> TokenStream {
    workflow::expand(attr.into(), item.into()).into()
}

/// Marks an `async fn` of a [`#[errand::workflow]`](macro@workflow) module
/// as a step of its graph.
///
/// `after = step` or `after = [step, ...]` names the steps whose outputs it
/// takes, in argument order; without `after` it is an entry step and takes
/// the workflow's input. `retries`, `backoff`, `timeout` and `priority` work
/// as on [`#[errand::job]`](macro@job). See [`macro@workflow`] for an
/// example.
///
/// The workflow macro reads and removes this attribute; on its own, outside
/// a workflow module, it is a compile error:
///
/// ```compile_fail
/// #[errand::dag_step]
/// async fn fetch_user(id: u64) -> Result<u64, errand::JobError> { Ok(id) }
/// ```
#[proc_macro_attribute]
pub fn dag_step(_attr: TokenStream, item: TokenStream) -> TokenStream {
    workflow::expand_outside("dag_step", item.into()).into()
}

/// Marks an `async fn` of a [`#[errand::workflow]`](macro@workflow) module
/// as a stage of a pipeline: the stages run in the order written, the first
/// on the workflow's input and each next one on the previous one's output.
///
/// ```
/// # use errand::prelude::*;
/// # use errand::memory::MemoryBackend;
/// # use errand::workflow::WorkflowExt;
/// #[errand::workflow]
/// mod import {
///     use errand::JobError;
///
///     #[step]
///     async fn download(url: String) -> Result<Vec<u8>, JobError> {
///         Ok(url.into_bytes())
///     }
///
///     #[step(retries = 3)]
///     async fn parse(bytes: Vec<u8>) -> Result<usize, JobError> {
///         Ok(bytes.len())
///     }
///
///     #[step]
///     async fn store(rows: usize) -> Result<String, JobError> {
///         Ok(format!("stored {rows} rows"))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let backend = MemoryBackend::new();
/// let run = backend.start(import::Import::new("https://x.y/z".into())).await?;
/// let mut out = None;
/// Monitor::new()
///     .register(import::Import::worker(&backend))
///     .run_until(async { out = Some(backend.workflow(run).wait().await) })
///     .await?;
/// assert_eq!(out.unwrap()?, "stored 13 rows");
/// # Ok(())
/// # }
/// ```
///
/// `retries`, `backoff`, `timeout` and `priority` work as on
/// [`#[errand::job]`](macro@job); `after` is an error (use `#[dag_step]` for
/// a graph). Outside a workflow module it is a compile error:
///
/// ```compile_fail
/// #[errand::step]
/// async fn download(url: String) -> Result<usize, errand::JobError> { Ok(url.len()) }
/// ```
#[proc_macro_attribute]
pub fn step(_attr: TokenStream, item: TokenStream) -> TokenStream {
    workflow::expand_outside("step", item.into()).into()
}
