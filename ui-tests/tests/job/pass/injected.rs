//! Injected parameters: `Data<T>`, `TaskCx`, `WorkerCx` (also by full
//! path), and `#[inject]` on a type implementing `FromTaskCx`. Only the
//! other parameters are stored, and the function keeps its signature.

use errand::prelude::*;

struct Mailer;

struct Attempt(u32);

impl FromTaskCx for Attempt {
    fn from_task_cx(cx: &TaskCx) -> Result<Self, JobError> {
        Ok(Attempt(cx.attempt()))
    }
}

#[errand::job]
async fn send(
    cx: TaskCx,
    to: String,
    _mailer: Data<Mailer>,
    worker: errand::WorkerCx,
    #[inject] attempt: Attempt,
    _: errand::Data<u64>,
    retry_of: Option<u64>,
) -> Result<String, JobError> {
    let _ = (cx.attempt(), worker.id(), attempt.0, retry_of);
    Ok(to)
}

fn main() {
    let Send { to, retry_of } = Send::new("x".to_owned(), None);
    let _ = (to, retry_of);
    // The function is still an ordinary function with all of its parameters.
    let _call = |cx: TaskCx, worker: WorkerCx| {
        send(cx, String::new(), Data::new(Mailer), worker, Attempt(1), Data::new(0_u64), None)
    };
    let mut requirements = errand::Requirements::default();
    <Send as Job>::requirements(&mut requirements);
    let needed: Vec<std::any::TypeId> = requirements.iter().map(|(id, _)| id).collect();
    assert_eq!(needed.len(), 2);
    assert!(needed.contains(&std::any::TypeId::of::<Mailer>()));
    assert!(needed.contains(&std::any::TypeId::of::<u64>()));
}
