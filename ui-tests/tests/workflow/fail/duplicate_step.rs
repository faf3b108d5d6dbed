#[errand::workflow]
mod onboarding {
    #[dag_step]
    async fn fetch_user(id: u64) {
        let _ = id;
    }

    #[dag_step]
    async fn fetch_user(id: u64) {
        let _ = id;
    }
}

fn main() {}
