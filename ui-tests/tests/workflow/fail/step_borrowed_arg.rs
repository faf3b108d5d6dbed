#[errand::workflow]
mod onboarding {
    #[dag_step]
    async fn fetch_user(email: &str) {
        let _ = email;
    }
}

fn main() {}
