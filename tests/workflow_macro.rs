//! `#[errand::workflow]` against the real runtime: workflows running end to
//! end on the in-memory backend.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use errand::memory::MemoryBackend;
use errand::prelude::*;
use errand::workflow::{RunState, Workflow, WorkflowExt};
use errand::{Error, Requirements, TaskState};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    email: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct MessageId(String);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct AccountId(u64);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Report {
    message: MessageId,
    account: AccountId,
}

/// Shared data of `send_welcome`: records the mails it sent.
#[derive(Default, Clone)]
struct Mailer {
    sent: Arc<Mutex<Vec<String>>>,
}

/// The README's workflow example.
#[errand::workflow(queue = "onboarding")]
mod onboarding {
    use super::*;

    #[dag_step]
    async fn fetch_user(id: u64) -> Result<User, JobError> {
        Ok(User { id, email: format!("user{id}@example.com") })
    }

    #[dag_step(after = fetch_user)]
    async fn send_welcome(user: User, mailer: Data<Mailer>) -> Result<MessageId, JobError> {
        mailer.sent.lock().map_err(|_| JobError::abort("poisoned"))?.push(user.email.clone());
        Ok(MessageId(format!("msg-{}", user.id)))
    }

    #[dag_step(after = fetch_user, retries = 10)]
    async fn provision(user: User) -> Result<AccountId, JobError> {
        Ok(AccountId(user.id * 100))
    }

    #[dag_step(after = [send_welcome, provision])]
    async fn report(msg: MessageId, account: AccountId) -> Result<Report, JobError> {
        Ok(Report { message: msg, account })
    }
}

/// Runs the monitor until `until` returns, and returns what it returned.
async fn run_with<T: Send, F: Future<Output = T> + Send>(monitor: Monitor, until: F) -> T {
    let mut out = None;
    if let Err(error) = monitor.run_until(async { out = Some(until.await) }).await {
        panic!("the monitor failed: {error}");
    }
    let Some(out) = out else { panic!("run_until returned before its future completed") };
    out
}

#[tokio::test]
async fn the_onboarding_example_runs_end_to_end() {
    let backend = MemoryBackend::new();
    let run = backend.start(onboarding::Onboarding::new(42)).await.expect("start");
    let monitor = Monitor::new().register(onboarding::Onboarding::worker(&backend).data(Mailer::default()));
    let report: Report = run_with(monitor, backend.workflow(run).wait()).await.expect("the run");
    assert_eq!(report, Report { message: MessageId("msg-42".into()), account: AccountId(4200) });

    let status = backend.workflow(run).status().await.expect("status");
    assert_eq!(status.state, RunState::Done);
    assert_eq!(status.workflow, "onboarding");
    let names: Vec<&str> = status.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["fetch_user", "send_welcome", "provision", "report"]);
    assert!(status.steps.iter().all(|s| s.state == Some(TaskState::Done)), "{status:?}");
}

#[test]
fn the_generated_workflow_describes_the_graph() {
    use onboarding::Onboarding;
    assert_eq!(Onboarding::NAME, "onboarding");
    assert_eq!(Onboarding::QUEUE, "onboarding");
    let steps = Onboarding::steps();
    let after: Vec<(&str, &[u16])> = steps.iter().map(|s| (s.name.as_str(), s.after.as_slice())).collect();
    assert_eq!(
        after,
        [("fetch_user", &[][..]), ("send_welcome", &[0][..]), ("provision", &[0][..]), ("report", &[1, 2][..])]
    );
    assert_eq!(steps[2].max_attempts, 11, "retries = 10");
    assert_eq!(Onboarding::step_options(2).retries, 10);
    assert_eq!(Onboarding::step_options(0).retries, errand::JobOptions::DEFAULT.retries);
    assert_eq!(Onboarding::new(7).into_input(), 7);
    let mut requirements = Requirements::default();
    Onboarding::requirements(&mut requirements);
    let needed: Vec<&str> = requirements.iter().map(|(_, name)| name).collect();
    assert_eq!(needed.len(), 1);
    assert!(needed[0].ends_with("Mailer"), "{needed:?}");
}

#[tokio::test]
async fn the_steps_get_their_injected_data() {
    let backend = MemoryBackend::new();
    let mailer = Mailer::default();
    let run = backend.start(onboarding::Onboarding::new(7)).await.expect("start");
    let monitor = Monitor::new().register(onboarding::Onboarding::worker(&backend).data(mailer.clone()));
    run_with(monitor, backend.workflow(run).wait()).await.expect("the run");
    assert_eq!(*mailer.sent.lock().expect("lock"), ["user7@example.com"]);
}

/// Counts the attempts of `charge`.
static CHARGES: AtomicU32 = AtomicU32::new(0);

/// A workflow whose second step aborts.
#[errand::workflow(name = "checkout")]
mod failing {
    use super::*;

    #[dag_step]
    async fn reserve(order: u32) -> Result<u32, JobError> {
        Ok(order)
    }

    #[dag_step(after = reserve, retries = 5)]
    async fn charge(order: u32) -> Result<u32, JobError> {
        CHARGES.fetch_add(1, Ordering::SeqCst);
        Err(JobError::abort(format!("card declined for order {order}")))
    }

    #[dag_step(after = charge)]
    async fn ship(order: u32) -> Result<(), JobError> {
        let _ = order;
        Ok(())
    }
}

#[tokio::test]
async fn a_step_that_aborts_fails_the_run() {
    let backend = MemoryBackend::new();
    let run = backend.start(failing::Failing::new(9)).await.expect("start");
    let monitor = Monitor::new().register(failing::Failing::worker(&backend));
    let result = run_with(monitor, backend.workflow(run).wait()).await;
    match result {
        Err(Error::RunFailed { workflow, error, .. }) => {
            assert_eq!(workflow, "checkout");
            assert!(error.contains("charge"), "the error names the step: {error}");
            assert!(error.contains("card declined for order 9"), "{error}");
        }
        other => panic!("expected the run to fail, got {other:?}"),
    }
    assert_eq!(CHARGES.load(Ordering::SeqCst), 1, "an aborted step is not retried");
    let status = backend.workflow(run).status().await.expect("status");
    assert_eq!(status.state, RunState::Failed);
    assert_eq!(status.steps[1].state, Some(TaskState::Dead));
    assert_eq!(status.steps[2].state, None, "`ship` never started");
}

/// A pipeline: each step takes the previous one's output.
#[errand::workflow]
mod import {
    use super::*;

    #[step]
    async fn download(url: String) -> Result<Vec<u8>, JobError> {
        Ok(url.into_bytes())
    }

    #[step(retries = 3, timeout = "5s")]
    async fn parse(bytes: Vec<u8>, cx: TaskCx) -> Result<(usize, u32), JobError> {
        Ok((bytes.len(), cx.attempt()))
    }

    #[step]
    async fn store(parsed: (usize, u32)) -> Result<String, JobError> {
        Ok(format!("stored {} rows on attempt {}", parsed.0, parsed.1))
    }
}

#[tokio::test]
async fn a_step_pipeline_runs_in_order() {
    let backend = MemoryBackend::new();
    let run = backend.start(import::Import::new("https://x.y/z".into())).await.expect("start");
    let monitor = Monitor::new().register(import::Import::worker(&backend));
    let out = run_with(monitor, backend.workflow(run).wait()).await.expect("the run");
    assert_eq!(out, "stored 13 rows on attempt 1");
    let status = backend.workflow(run).status().await.expect("status");
    let names: Vec<&str> = status.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["download", "parse", "store"]);
    assert_eq!(import::Import::steps()[2].after, [1]);
}

/// Two sinks: the output is a tuple, in declaration order; no input.
#[errand::workflow]
mod fan_out {
    use super::*;

    #[dag_step]
    async fn start() -> Result<u32, JobError> {
        Ok(3)
    }

    #[dag_step(after = start)]
    async fn square(n: u32) -> Result<u32, JobError> {
        Ok(n * n)
    }

    #[dag_step(after = start)]
    async fn label(n: u32) -> Result<String, JobError> {
        Ok(format!("n={n}"))
    }
}

#[tokio::test]
async fn several_sinks_give_a_tuple() {
    let backend = MemoryBackend::new();
    let run = backend.start(fan_out::FanOut::new()).await.expect("start");
    let monitor = Monitor::new().register(fan_out::FanOut::worker(&backend));
    let out: (u32, String) = run_with(monitor, backend.workflow(run).wait()).await.expect("run");
    assert_eq!(out, (9, "n=3".to_owned()));
}

#[tokio::test]
async fn a_worker_without_its_data_fails_at_start() {
    let backend = MemoryBackend::new();
    let monitor = Monitor::new().register(onboarding::Onboarding::worker(&backend));
    let result = monitor.run_until(async {}).await;
    match result {
        Err(Error::MissingData { job, type_name }) => {
            assert_eq!(job, "onboarding");
            assert!(type_name.ends_with("Mailer"), "{type_name}");
        }
        other => panic!("expected MissingData, got {other:?}"),
    }
}
