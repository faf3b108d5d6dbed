//! `#[errand::job]` against the real runtime: what it generates, and jobs
//! running end to end on the in-memory backend.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use errand::memory::MemoryBackend;
use errand::prelude::*;
use errand::{Backoff, Error, TaskState};

/// Shared data handed to workers with `.data(...)`.
struct Greeter {
    greeting: String,
    calls: AtomicUsize,
}

#[errand::job(queue = "greetings", retries = 2, backoff = "fixed(10ms)", timeout = "5s", priority = 3)]
async fn greet(name: String, punctuation: char, greeter: Data<Greeter>, cx: TaskCx) -> Result<String, JobError> {
    greeter.calls.fetch_add(1, Ordering::SeqCst);
    assert_eq!(cx.attempt(), 1);
    Ok(format!("{}, {name}{punctuation}", greeter.greeting))
}

#[errand::job(name = "math.add", unique = "add:{a}+{b}", unique_for = "1m")]
async fn add(a: i64, b: i64) -> Result<i64, JobError> {
    Ok(a + b)
}

/// Records what ran, for a job that returns `()`.
static SEEN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Injected with `#[inject]`: the attempt number.
struct Attempt(u32);

impl FromTaskCx for Attempt {
    fn from_task_cx(cx: &TaskCx) -> Result<Self, JobError> {
        Ok(Attempt(cx.attempt()))
    }
}

#[errand::job(unique = "args")]
async fn record(n: u32, #[inject] attempt: Attempt) {
    assert_eq!(attempt.0, 1);
    if let Ok(mut seen) = SEEN.lock() {
        seen.push(n);
    }
}

/// Runs the monitor until `done` holds, or fails the test after 10 s.
async fn run_until_done<F, Fut>(monitor: Monitor, done: F) -> Result<(), Error>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let run = monitor.run_until(async move {
        while !done().await {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    tokio::time::timeout(Duration::from_secs(10), run).await.map_err(|_| Error::Config("test timed out".into()))?
}

#[test]
fn the_struct_and_the_job_impl_follow_the_attribute() {
    let job = Greet::new("Ada".to_owned(), '!');
    let Greet { name, punctuation } = job.clone();
    assert_eq!((name.as_str(), punctuation), ("Ada", '!'));

    assert_eq!(Greet::NAME, "greet");
    assert_eq!(Greet::QUEUE, "greetings");
    let options = Greet::options();
    assert_eq!(options.retries, 2);
    assert_eq!(options.backoff, Backoff::fixed(Duration::from_millis(10)));
    assert_eq!(options.timeout, Some(Duration::from_secs(5)));
    assert_eq!(options.priority, 3);
    assert_eq!(options.unique_for, None);
    assert_eq!(job.unique_key(), None);

    assert_eq!(Add::NAME, "math.add");
    assert_eq!(Add::QUEUE, "default");
    assert_eq!(Add::options().retries, errand::JobOptions::DEFAULT.retries);
    assert_eq!(Add::options().unique_for, Some(Duration::from_secs(60)));
    assert_eq!(Add::new(1, 2).unique_key().as_deref(), Some("math.add:add:1+2"));

    let key = Record::new(7).unique_key();
    assert!(key.as_deref().is_some_and(|k| k.starts_with("record:")), "{key:?}");
    assert_eq!(key, Record::new(7).unique_key());
    assert_ne!(key, Record::new(8).unique_key());

    let mut requirements = errand::Requirements::default();
    <Greet as Job>::requirements(&mut requirements);
    let needed: Vec<_> = requirements.iter().map(|(id, _)| id).collect();
    assert_eq!(needed, [std::any::TypeId::of::<Greeter>()]);
}

#[tokio::test]
async fn the_function_is_still_callable() {
    assert_eq!(add(2, 3).await.ok(), Some(5));
    let greeter = Data::new(Greeter { greeting: "Hi".into(), calls: AtomicUsize::new(0) });
    let cx = TaskCx::detached(TaskId(1), 1);
    assert_eq!(greet("Bo".into(), '.', greeter, cx).await.ok().as_deref(), Some("Hi, Bo."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_with_data_runs_end_to_end() -> Result<(), Error> {
    let backend = MemoryBackend::new();
    let mut ids = Vec::new();
    for (name, punctuation) in [("Ada", '!'), ("Grace", '?'), ("Linus", '.')] {
        ids.push(backend.enqueue(Greet::new(name.to_owned(), punctuation)).await?);
    }
    let sum = backend.enqueue(Add::new(40, 2)).await?;
    let recorded = backend.enqueue(Record::new(11)).await?;

    let watch = backend.clone();
    let watched = ids.clone();
    let monitor = Monitor::new()
        .register(
            Greet::worker(&backend)
                .data(Greeter { greeting: "Hello".into(), calls: AtomicUsize::new(0) })
                .concurrency(2),
        )
        .register(Add::worker(&backend))
        .register(Record::worker(&backend));
    run_until_done(monitor, move || {
        let (watch, watched) = (watch.clone(), watched.clone());
        async move {
            for id in watched {
                if !matches!(watch.result::<Greet>(id).await, Ok(Some(_))) {
                    return false;
                }
            }
            matches!(watch.result::<Add>(sum).await, Ok(Some(_)))
                && matches!(watch.task(recorded).await, Ok(Some(info)) if info.state == TaskState::Done)
        }
    })
    .await?;

    let mut outputs = Vec::new();
    for id in ids {
        outputs.push(backend.result::<Greet>(id).await?);
    }
    assert_eq!(
        outputs,
        [Some("Hello, Ada!".to_owned()), Some("Hello, Grace?".to_owned()), Some("Hello, Linus.".to_owned())]
    );
    assert_eq!(backend.result::<Add>(sum).await?, Some(42));
    assert_eq!(backend.result::<Record>(recorded).await?, Some(()));
    assert!(SEEN.lock().map(|seen| seen.contains(&11)).unwrap_or(false));

    let task = backend.task(sum).await?.map(|t| (t.job, t.queue, t.unique_key));
    assert_eq!(task, Some(("math.add".to_owned(), "default".to_owned(), Some("math.add:add:40+2".to_owned()))));
    Ok(())
}

#[tokio::test]
async fn a_worker_without_its_data_fails_before_running_anything() -> Result<(), Error> {
    let backend = MemoryBackend::new();
    let id = backend.enqueue(Greet::new("Ada".to_owned(), '!')).await?;

    let outcome = tokio::time::timeout(
        Duration::from_secs(5),
        Monitor::new().register(Greet::worker(&backend)).run_until(std::future::pending::<()>()),
    )
    .await;
    match outcome {
        Ok(Err(Error::MissingData { job, type_name })) => {
            assert_eq!(job, "greet");
            assert!(type_name.ends_with("Greeter"), "{type_name}");
        }
        other => panic!("expected Error::MissingData, got {other:?}"),
    }

    let info = backend.task(id).await?.map(|t| (t.state, t.attempt));
    assert_eq!(info, Some((TaskState::Pending, 0)));
    assert_eq!(backend.result::<Greet>(id).await?, None);
    Ok(())
}
