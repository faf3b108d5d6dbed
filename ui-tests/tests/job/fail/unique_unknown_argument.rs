use errand::Data;

struct Mailer;

#[errand::job(unique = "welcome:{email}")]
async fn send_email(to: String, subject: String, mailer: Data<Mailer>) {
    let _ = (to, subject, mailer);
}

fn main() {}
