struct Mailer;

#[errand::job]
async fn send_email(to: String, mailer: Mailer) {
    let _ = (to, mailer);
}

fn main() {}
