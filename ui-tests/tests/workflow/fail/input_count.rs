use errand::JobError;

#[errand::workflow]
mod onboarding {
    use super::*;

    #[dag_step]
    async fn fetch_user(id: u64) -> Result<u64, JobError> {
        Ok(id)
    }

    #[dag_step(after = fetch_user)]
    async fn send_welcome(user: u64) -> Result<String, JobError> {
        Ok(user.to_string())
    }

    #[dag_step(after = fetch_user)]
    async fn provision(user: u64) -> Result<u64, JobError> {
        Ok(user)
    }

    #[dag_step(after = [send_welcome, provision])]
    async fn report(message: String) {
        let _ = message;
    }
}

fn main() {}
