#[errand::workflow]
mod onboarding {
    #[dag_step]
    async fn fetch_user(id: u64) -> Result<u64, errand::JobError> {
        Ok(id)
    }

    #[dag_step(after = "fetch_user")]
    async fn send_welcome(user: u64) {
        let _ = user;
    }
}

fn main() {}
