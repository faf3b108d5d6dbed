struct Mailer;

#[errand::job]
async fn send_email(to: String, #[inject] mailer: Mailer) {
    let _ = (to, mailer);
}

fn main() {}
