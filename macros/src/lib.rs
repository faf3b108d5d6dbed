//! Procedural macros of [errand](https://docs.rs/errand). Use them through
//! the `errand` crate (`#[errand::job]`), which re-exports them and provides
//! the runtime their expansions refer to.

mod attr;
mod case;
mod ctxt;
mod duration;
mod job;

use proc_macro::TokenStream;

/// Turns an `async fn` into a background job.
///
/// ```ignore
/// use errand::prelude::*;
///
/// #[errand::job(queue = "emails", retries = 5, backoff = "exponential(100ms, max = 1m)", timeout = "30s")]
/// async fn send_email(to: String, subject: String, mailer: Data<Mailer>) -> Result<MessageId, JobError> {
///     mailer.send(&to, &subject).await.map_err(JobError::retry)
/// }
///
/// backend.enqueue(SendEmail::new("a@b.c".into(), "hi".into())).await?;
/// Monitor::new()
///     .register(SendEmail::worker(&backend).data(Mailer::new()).concurrency(8))
///     .run_until(tokio::signal::ctrl_c())
///     .await?;
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
/// Set `ERRAND_MACROS_DEBUG=1` while building to print each expansion to
/// stderr.
#[proc_macro_attribute]
pub fn job(attr: TokenStream, item: TokenStream) -> TokenStream {
    job::expand(attr.into(), item.into()).into()
}
