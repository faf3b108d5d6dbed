#[errand::job]
async fn send_email<'a>(to: std::borrow::Cow<'a, str>) {
    let _ = to;
}

fn main() {}
