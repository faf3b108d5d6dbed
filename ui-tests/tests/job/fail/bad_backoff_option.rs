#[errand::job(backoff = "linear(1s, factor = 2)")]
async fn send_email(to: String) {
    let _ = to;
}

fn main() {}
