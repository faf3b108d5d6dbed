// Every mistake is reported at once, not just the first.
#[errand::job(queue = "emails", retrys = 5, timeout = "30")]
fn send_email(to: &str, subject: String) {
    let _ = (to, subject);
}

fn main() {}
