#[errand::job(backoff = "exponentail(100ms, max = 1m)")]
async fn send_email(to: String) {
    let _ = to;
}

fn main() {}
