#[errand::workflow]
mod import {
    #[dag_step]
    async fn download(url: String) -> Result<Vec<u8>, errand::JobError> {
        Ok(url.into_bytes())
    }

    #[step]
    async fn parse(bytes: Vec<u8>) {
        let _ = bytes;
    }
}

fn main() {}
