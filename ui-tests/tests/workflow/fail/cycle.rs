#[errand::workflow]
mod looping {
    #[dag_step]
    async fn start(n: u32) -> u32 {
        n
    }

    #[dag_step(after = c)]
    async fn a(n: u32) -> Result<u32, errand::JobError> {
        Ok(n)
    }

    #[dag_step(after = a)]
    async fn b(n: u32) -> Result<u32, errand::JobError> {
        Ok(n)
    }

    #[dag_step(after = b)]
    async fn c(n: u32) -> Result<u32, errand::JobError> {
        Ok(n)
    }
}

fn main() {}
