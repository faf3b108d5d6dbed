#[errand::job]
async fn send_email(to: String) -> usize {
    to.len()
}

fn main() {}
