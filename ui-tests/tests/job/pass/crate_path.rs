//! `crate = "..."`: errand reached through a re-export under another name.

mod my_app {
    pub use errand as jobs;
}

use my_app::jobs::Job;

#[my_app::jobs::job(crate = "crate::my_app::jobs", queue = "q", timeout = "5s", unique = "args")]
async fn reexported(id: u64, cx: my_app::jobs::TaskCx) -> Result<u64, my_app::jobs::JobError> {
    let _ = cx;
    Ok(id)
}

fn main() {
    assert_eq!(Reexported::QUEUE, "q");
    assert_eq!(Reexported::options().timeout, Some(std::time::Duration::from_secs(5)));
    let a = Reexported::new(1).unique_key();
    assert!(a.as_deref().is_some_and(|k| k.starts_with("reexported:")));
    assert_eq!(a, Reexported::new(1).unique_key());
    assert_ne!(a, Reexported::new(2).unique_key());
}
