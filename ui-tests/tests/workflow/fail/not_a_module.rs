#[errand::workflow]
async fn onboarding(id: u64) {
    let _ = id;
}

fn main() {}
