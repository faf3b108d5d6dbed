#[derive(serde::Serialize, serde::Deserialize)]
struct User {
    id: u64,
}

#[errand::job]
async fn send_email(user: &User) {
    let _ = user.id;
}

fn main() {}
