use errand::dag_step;

#[dag_step]
async fn fetch_user(id: u64) -> Result<u64, errand::JobError> {
    Ok(id)
}

fn main() {}
