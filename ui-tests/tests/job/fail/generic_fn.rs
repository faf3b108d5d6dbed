#[errand::job]
async fn send_email<T: serde::Serialize>(to: T) {
    let _ = to;
}

fn main() {}
