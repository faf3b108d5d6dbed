#[errand::workflow]
mod import {
    #[step]
    async fn download(url: String) -> Result<Vec<u8>, errand::JobError> {
        Ok(url.into_bytes())
    }

    #[step]
    async fn parse(bytes: Vec<u8>, strict: bool) {
        let _ = (bytes, strict);
    }
}

fn main() {}
