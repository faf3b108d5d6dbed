use std::rc::Rc;

async fn tick() {}

#[errand::job]
async fn count(n: u32) {
    let shared = Rc::new(n);
    tick().await;
    let _ = shared;
}

fn main() {}
