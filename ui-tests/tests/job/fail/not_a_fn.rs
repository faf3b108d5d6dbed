#[errand::job]
struct SendEmail {
    to: String,
}

fn main() {}
