#[errand::workflow]
mod onboarding {
    #[dag_step]
    async fn fetch_user(id: u64, region: String) {
        let _ = (id, region);
    }
}

fn main() {}
