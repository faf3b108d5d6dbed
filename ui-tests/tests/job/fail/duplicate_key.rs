#[errand::job(queue = "emails", retries = 3, queue = "mail")]
async fn send_email(to: String) {
    let _ = to;
}

fn main() {}
