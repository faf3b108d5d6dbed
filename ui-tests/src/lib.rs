//! Compile-pass and compile-fail cases for errand's macros, run with
//! `cargo test -p errand-ui-tests` (trybuild): `tests/<macro>/pass/*.rs`
//! must compile, `tests/<macro>/fail/*.rs` must fail with exactly the
//! `.stderr` beside them — the messages a user sees. Regenerate with
//! `TRYBUILD=overwrite` and read every changed `.stderr` before committing.
//!
//! Every pass case is an ordinary program like this one:
//!
//! ```
//! use errand::prelude::*;
//!
//! #[errand::job(queue = "emails", retries = 3, timeout = "30s")]
//! async fn send_email(to: String) -> Result<(), JobError> {
//!     let _ = to;
//!     Ok(())
//! }
//!
//! assert_eq!(SendEmail::new("a@b.c".into()).to, "a@b.c");
//! assert_eq!(<SendEmail as Job>::QUEUE, "emails");
//! ```
