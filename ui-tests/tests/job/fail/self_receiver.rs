struct Mailer;

impl Mailer {
    #[errand::job]
    async fn send_email(&self, to: String) {
        let _ = to;
    }
}

fn main() {}
