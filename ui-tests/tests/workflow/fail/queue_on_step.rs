#[errand::workflow]
mod onboarding {
    #[dag_step(queue = "emails")]
    async fn fetch_user(id: u64) {
        let _ = id;
    }
}

fn main() {}
