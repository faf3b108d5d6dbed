// Every mistake is reported at once, not just the first.
#[errand::workflow(queue = "onboarding", retrys = 3)]
mod onboarding {
    #[dag_step]
    fn fetch_user(id: u64) -> Result<u64, errand::JobError> {
        Ok(id)
    }

    #[dag_step(after = fetch_usr, timeout = "30")]
    async fn send_welcome(user: &str) {
        let _ = user;
    }
}

fn main() {}
