mod import {
    #[errand::step]
    async fn download(url: String) -> Result<Vec<u8>, errand::JobError> {
        Ok(url.into_bytes())
    }
}

fn main() {}
