#[errand::workflow(queu = "onboarding")]
mod onboarding {
    #[dag_step]
    async fn fetch_user(id: u64) {
        let _ = id;
    }
}

fn main() {
    // Only the attribute is wrong: the workflow is still generated.
    let _ = onboarding::Onboarding::new(1);
}
