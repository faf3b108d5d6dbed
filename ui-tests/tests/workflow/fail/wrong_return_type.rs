#[errand::workflow]
mod onboarding {
    #[dag_step]
    async fn fetch_user(id: u64) -> u64 {
        id
    }
}

fn main() {}
