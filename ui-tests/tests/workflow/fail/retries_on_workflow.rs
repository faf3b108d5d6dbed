#[errand::workflow(retries = 3)]
mod onboarding {
    #[dag_step]
    async fn fetch_user(id: u64) {
        let _ = id;
    }
}

fn main() {}
