//! Several sinks: the output is a tuple of their outputs in declaration
//! order. No entry step takes an input, so the input is `()` and `new()`
//! takes nothing.

use errand::JobError;
use errand::workflow::Workflow;

#[errand::workflow]
mod fan_out {
    use super::*;

    #[dag_step(after = start)] // declared before the step it runs after
    async fn square(n: u32) -> Result<u64, JobError> {
        Ok(u64::from(n) * u64::from(n))
    }

    #[dag_step]
    async fn start() -> Result<u32, JobError> {
        Ok(3)
    }

    #[dag_step(after = start)]
    async fn label(n: u32) -> Result<String, JobError> {
        Ok(n.to_string())
    }

    #[dag_step(after = start)]
    async fn log(n: u32) {
        let _ = n;
    }
}

fn main() {
    let workflow: fan_out::FanOut = fan_out::FanOut::new();
    let (): <fan_out::FanOut as Workflow>::Input = workflow.into_input();
    let _: fn(<fan_out::FanOut as Workflow>::Output) -> (u64, String, ()) = |out| out;
}
