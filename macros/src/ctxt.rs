//! Collects every error a macro finds, so a user sees all mistakes at once.

use std::fmt::Display;

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;

/// Gathers `syn::Error`s during parsing and checking (serde_derive's
/// `internals/ctxt.rs`); [`Ctxt::check`] merges them into one error whose
/// `to_compile_error` emits one `compile_error!` per mistake.
#[derive(Default)]
pub(crate) struct Ctxt {
    errors: Vec<syn::Error>,
}

impl Ctxt {
    /// An empty collector.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Records an error spanning all of `tokens`.
    pub(crate) fn error_spanned_by<T: ToTokens, M: Display>(&mut self, tokens: T, message: M) {
        self.errors.push(syn::Error::new_spanned(tokens.into_token_stream(), message));
    }

    /// Records an error at `span`.
    pub(crate) fn error_at<M: Display>(&mut self, span: Span, message: M) {
        self.errors.push(syn::Error::new(span, message));
    }

    /// Records an error syn produced.
    pub(crate) fn syn_error(&mut self, error: syn::Error) {
        self.errors.push(error);
    }

    /// How many errors have been recorded so far.
    pub(crate) fn len(&self) -> usize {
        self.errors.len()
    }

    /// Whether nothing has been recorded yet.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// `Ok` when nothing was recorded, else every error combined.
    pub(crate) fn check(self) -> Result<(), syn::Error> {
        let mut errors = self.errors.into_iter();
        let Some(mut combined) = errors.next() else {
            return Ok(());
        };
        for error in errors {
            combined.combine(error);
        }
        Err(combined)
    }
}

/// The user's item as written, followed by a `compile_error!` per error:
/// what a macro emits when it cannot generate anything (tokio-macros'
/// `token_stream_with_error`), so the item still type-checks and IDEs keep
/// working.
pub(crate) fn with_errors(mut item: TokenStream, errors: Option<syn::Error>) -> TokenStream {
    item.extend(errors.map(syn::Error::into_compile_error));
    item
}

/// Prints an expansion to stderr when `ERRAND_MACROS_DEBUG=1`.
pub(crate) fn debug_expansion(output: &TokenStream) {
    if std::env::var_os("ERRAND_MACROS_DEBUG").is_some_and(|v| v == "1") {
        eprintln!("{output}");
    }
}
