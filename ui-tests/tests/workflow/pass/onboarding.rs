//! The README's workflow example: a diamond with fan-out, fan-in and injected data.

use errand::prelude::*;
use errand::workflow::Workflow;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    id: u64,
}

#[derive(Serialize, Deserialize)]
pub struct MessageId(String);

#[derive(Serialize, Deserialize)]
pub struct AccountId(u64);

#[derive(Serialize, Deserialize)]
pub struct Report {
    message: MessageId,
    account: AccountId,
}

pub struct Mailer;

#[errand::workflow(queue = "onboarding")]
mod onboarding {
    use super::*;

    #[dag_step]
    async fn fetch_user(id: u64) -> Result<User, JobError> {
        Ok(User { id })
    }

    #[dag_step(after = fetch_user)]
    async fn send_welcome(user: User, _mailer: Data<Mailer>) -> Result<MessageId, JobError> {
        Ok(MessageId(user.id.to_string()))
    }

    #[dag_step(after = fetch_user, retries = 10, backoff = "fixed(1s)", timeout = "30s", priority = 5)]
    async fn provision(user: User) -> Result<AccountId, JobError> {
        Ok(AccountId(user.id))
    }

    #[dag_step(after = [send_welcome, provision])]
    async fn report(message: MessageId, account: AccountId) -> Result<Report, JobError> {
        Ok(Report { message, account })
    }
}

fn main() {
    // Typed input and output.
    let input: <onboarding::Onboarding as Workflow>::Input = 42_u64;
    let workflow = onboarding::Onboarding::new(input);
    let _: u64 = workflow.input;
    let _: fn(<onboarding::Onboarding as Workflow>::Output) -> Report = |report| report;
    assert_eq!(onboarding::Onboarding::NAME, "onboarding");
    let _worker = |backend: &errand::memory::MemoryBackend| onboarding::Onboarding::worker(backend).data(Mailer);
}
