use errand::JobError;

#[errand::workflow]
mod two_entries {
    use super::*;

    #[dag_step]
    async fn by_id(id: u64) -> Result<u64, JobError> {
        Ok(id)
    }

    // The workflow has one input: every entry step takes the same type.
    #[dag_step]
    async fn by_email(email: String) -> Result<u64, JobError> {
        Ok(email.len() as u64)
    }

    #[dag_step(after = [by_id, by_email])]
    async fn merge(a: u64, b: u64) {
        let _ = (a, b);
    }
}

fn main() {}
