#[errand::job(retries = "5")]
async fn send_email(to: String) {
    let _ = to;
}

fn main() {}
