#[errand::workflow(queue = "a", queue = "b")]
mod onboarding {
    #[dag_step]
    async fn fetch_user(id: u64) {
        let _ = id;
    }
}

fn main() {}
