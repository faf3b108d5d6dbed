//! The commands that read and steer a store, written once for every
//! backend: [`run`] takes any backend with `Expose`, `WorkflowStore` and
//! `CancelRunning`.

mod queues;
mod runs;
mod tasks;

use errand_runtime::Expose;
use errand_runtime::capability::CancelRunning;
use errand_runtime::workflow::WorkflowStore;

use crate::args::{Command, QueueCommand, RunsCommand, TasksCommand};
use crate::connect::Target;
use crate::error::Failure;
use crate::output::Output;

/// Runs `command` (any but `migrate` and `bench`, which the caller
/// handles) on `backend`, the store at `target`.
pub(crate) async fn run<B>(backend: B, target: &Target, command: &Command) -> Result<Output, Failure>
where
    B: Expose + WorkflowStore + CancelRunning,
{
    let fail = |e: errand_runtime::Error| target.failure(&e);
    match command {
        Command::Queues => queues::queues(&backend).await.map_err(fail),
        Command::Workers => queues::workers(&backend).await.map_err(fail),
        Command::Queue(QueueCommand::Pause { queue }) => queues::pause(&backend, queue, true).await.map_err(fail),
        Command::Queue(QueueCommand::Resume { queue }) => queues::pause(&backend, queue, false).await.map_err(fail),
        Command::Tasks(TasksCommand::Ls(args)) => tasks::list(&backend, args).await.map_err(fail),
        Command::Tasks(TasksCommand::Show { id }) => tasks::show(&backend, *id).await.map_err(fail)?,
        Command::Tasks(TasksCommand::Retry(args)) => tasks::retry(&backend, args).await.map_err(fail)?,
        Command::Tasks(TasksCommand::Cancel { id }) => tasks::cancel(&backend, *id).await.map_err(fail)?,
        Command::Tasks(TasksCommand::Delete { id }) => tasks::delete(&backend, *id).await.map_err(fail)?,
        Command::Runs(RunsCommand::Ls(args)) => runs::list(&backend, args).await.map_err(fail),
        Command::Runs(RunsCommand::Show { id }) => runs::show(&backend, *id).await.map_err(fail)?,
        Command::Board(args) => crate::board::serve(backend, target, args).await,
        Command::Migrate { .. } | Command::Bench(_) => {
            Err(Failure::usage("internal: `migrate` and `bench` do not run through the generic path"))
        }
    }
}
