#[errand::workflow]
mod onboarding {
    #[dag_step]
    fn fetch_user(id: u64) {
        let _ = id;
    }
}

fn main() {}
