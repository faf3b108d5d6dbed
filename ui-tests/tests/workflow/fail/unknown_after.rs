#[errand::workflow]
mod onboarding {
    use errand::JobError;

    #[dag_step]
    async fn fetch_user(id: u64) -> Result<u64, JobError> {
        Ok(id)
    }

    #[dag_step(after = fetch_usr)]
    async fn send_welcome(user: u64) {
        let _ = user;
    }
}

fn main() {}
