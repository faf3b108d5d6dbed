#[errand::job(timeout = "30 seconds")]
async fn send_email(to: String) {
    let _ = to;
}

fn main() {}
