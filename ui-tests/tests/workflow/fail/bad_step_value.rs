#[errand::workflow]
mod onboarding {
    #[dag_step(retries = -1, timeout = "30 sec")]
    async fn fetch_user(id: u64) {
        let _ = id;
    }
}

fn main() {}
