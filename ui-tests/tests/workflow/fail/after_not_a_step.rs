#[errand::workflow]
mod onboarding {
    use errand::JobError;

    async fn fetch_user(id: u64) -> Result<u64, JobError> {
        Ok(id)
    }

    #[dag_step]
    async fn start(id: u64) -> Result<u64, JobError> {
        fetch_user(id).await
    }

    #[dag_step(after = fetch_user)]
    async fn send_welcome(user: u64) {
        let _ = user;
    }
}

fn main() {}
