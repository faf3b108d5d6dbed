#[errand::job(priority = 40000)]
async fn send_email(to: String) {
    let _ = to;
}

fn main() {}
