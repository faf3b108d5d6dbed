use errand::JobError;

#[derive(serde::Serialize, serde::Deserialize)]
pub struct MessageId(pub String);

#[errand::workflow]
mod onboarding {
    use super::*;

    #[dag_step]
    async fn fetch_user(id: u64) -> Result<String, JobError> {
        Ok(id.to_string())
    }

    #[dag_step(after = fetch_user)]
    async fn send_welcome(user: String) -> Result<u32, JobError> {
        Ok(user.len() as u32)
    }

    // `send_welcome` returns a `u32`, not a `MessageId`.
    #[dag_step(after = send_welcome)]
    async fn report(message: MessageId) {
        let _ = message.0;
    }
}

fn main() {}
