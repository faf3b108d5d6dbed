#[errand::workflow]
mod onboarding {
    #[dag_step]
    async fn fetch_user(self, id: u64) {
        let _ = id;
    }
}

fn main() {}
