#[errand::workflow]
mod onboarding {
    #[dag_step(retries = 1, retries = 2)]
    async fn fetch_user(id: u64) {
        let _ = id;
    }
}

fn main() {}
