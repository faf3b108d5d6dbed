#[errand::job(retry = 5)]
async fn send_email(to: String) {
    let _ = to;
}

fn main() {
    // Only the attribute is wrong: the job is still generated (with default
    // options), so code using it adds no "cannot find type" errors.
    let _ = SendEmail::new(String::new());
}
