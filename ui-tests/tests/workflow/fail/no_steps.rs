#[errand::workflow]
mod onboarding {
    async fn fetch_user(id: u64) {
        let _ = id;
    }
}

fn main() {}
