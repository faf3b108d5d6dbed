//! Injected parameters in steps: `Data<T>`, `TaskCx`, `WorkerCx` and
//! `#[inject]`; the workflow's requirements collect every step's `Data<T>`.

use errand::prelude::*;
use errand::workflow::Workflow;

struct Mailer;
struct Db;

struct Attempt(u32);

impl FromTaskCx for Attempt {
    fn from_task_cx(cx: &TaskCx) -> Result<Self, JobError> {
        Ok(Attempt(cx.attempt()))
    }
}

#[errand::workflow]
mod signup {
    use super::*;

    #[dag_step]
    async fn create(cx: TaskCx, email: String, _db: Data<Db>) -> Result<u64, JobError> {
        Ok(email.len() as u64 + u64::from(cx.attempt()))
    }

    #[dag_step(after = create)]
    async fn welcome(
        worker: errand::WorkerCx,
        id: u64,
        #[inject] attempt: Attempt,
        _mailer: errand::Data<Mailer>,
        _db: Data<Db>,
    ) -> Result<String, JobError> {
        let _ = worker.id();
        Ok(format!("{id}/{}", attempt.0))
    }
}

fn main() {
    let _ = signup::Signup::new("a@b.c".to_owned());
    let mut requirements = errand::Requirements::default();
    signup::Signup::requirements(&mut requirements);
    let needed: Vec<std::any::TypeId> = requirements.iter().map(|(id, _)| id).collect();
    assert_eq!(needed, [std::any::TypeId::of::<Db>(), std::any::TypeId::of::<Mailer>()]);
}
