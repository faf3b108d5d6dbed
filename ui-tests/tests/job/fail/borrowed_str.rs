#[errand::job]
async fn send_email(to: &str) {
    let _ = to;
}

fn main() {}
