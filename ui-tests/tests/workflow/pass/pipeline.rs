//! A `#[step]` pipeline: each step takes the previous one's output, in the
//! order written; a step may ignore it by taking nothing.

use errand::JobError;
use errand::workflow::Workflow;

#[errand::workflow(name = "import", crate = "errand")]
pub mod import {
    use super::*;

    #[errand::step]
    async fn download(url: String) -> Result<Vec<u8>, JobError> {
        Ok(url.into_bytes())
    }

    #[step(retries = 3)]
    async fn parse(bytes: Vec<u8>) -> Result<usize, JobError> {
        Ok(bytes.len())
    }

    #[step]
    async fn store(rows: usize) {
        let _ = rows;
    }

    #[step]
    async fn notify() -> Result<String, JobError> {
        Ok("done".to_owned())
    }
}

fn main() {
    let _ = import::Import::new("https://example.com".to_owned());
    let _: fn(<import::Import as Workflow>::Output) -> String = |out| out;
    let steps = import::Import::steps();
    assert_eq!(steps[3].after, [2]);
}
