//! The struct, its fields and its methods take the function's visibility;
//! the function stays callable.

mod jobs {
    use errand::JobError;

    #[errand::job]
    pub async fn public(r#type: String) -> Result<usize, JobError> {
        Ok(r#type.len())
    }

    #[errand::job]
    pub(crate) async fn crate_visible(n: i32) {
        let _ = n;
    }

    /// Private: the struct is private too, usable only in this module.
    #[errand::job]
    async fn private(n: i32) {
        let _ = n;
    }

    pub fn make_private() -> impl std::fmt::Debug {
        Private::new(1)
    }
}

fn main() {
    let job = jobs::Public { r#type: "t".to_owned() };
    let _ = jobs::Public::new(job.r#type);
    let _ = jobs::CrateVisible::new(3).n;
    let _ = jobs::make_private();
    let _future = jobs::public("x".to_owned());
}
