#[errand::workflow]
mod onboarding {
    #[dag_step]
    async fn fetch_user<T: serde::Serialize>(id: T) {
        let _ = id;
    }
}

fn main() {}
