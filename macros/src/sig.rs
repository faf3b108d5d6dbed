//! The function signatures of `#[errand::job]` functions and workflow steps:
//! the checks and the parameter sorting they share, and the generated code
//! that feeds a call of the function (injected parameters, the return type).
//!
//! Every message names what the function is ([`FnKind`]), so a job and a
//! step get the same rules in their own words.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{FnArg, Ident, ItemFn, Pat, Type};

use crate::ctxt::Ctxt;

/// What kind of function is being checked, for the wording of errors.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum FnKind {
    /// An `#[errand::job]` function: stored parameters become struct fields.
    Job,
    /// A `#[dag_step]` or `#[step]` of a workflow: stored parameters are the
    /// outputs of the steps it runs after (or the workflow's input).
    Step,
}

impl FnKind {
    /// "job" / "step".
    fn noun(self) -> &'static str {
        match self {
            FnKind::Job => "job",
            FnKind::Step => "step",
        }
    }

    /// "job functions" / "step functions".
    fn fns(self) -> &'static str {
        match self {
            FnKind::Job => "job functions",
            FnKind::Step => "step functions",
        }
    }

    /// "arguments" / "inputs": what the stored parameters are called.
    fn args(self) -> &'static str {
        match self {
            FnKind::Job => "arguments",
            FnKind::Step => "inputs",
        }
    }

    /// "the worker" / "the workflow's worker".
    fn caller(self) -> &'static str {
        match self {
            FnKind::Job => "the worker",
            FnKind::Step => "the workflow's worker",
        }
    }
}

/// One parameter of a job or step function.
pub(crate) struct Param<'a> {
    /// For a job's stored parameter, the field's name; otherwise a
    /// generated local (`__errand_inject_2`, `__errand_input_0`).
    pub(crate) ident: Ident,
    pub(crate) ty: &'a Type,
    pub(crate) injected: bool,
}

/// Runs the checks on the function itself (not its parameters): `async`,
/// safe, not generic, a concrete return type.
pub(crate) fn check_fn(ctxt: &mut Ctxt, func: &ItemFn, kind: FnKind) {
    check_async(ctxt, func, kind);
    check_plain_fn(ctxt, func, kind);
    check_generics(ctxt, func, kind);
    check_return_type(ctxt, func, kind);
}

/// Checks every parameter and sorts them into stored and injected ones.
/// `marked` says which carried `#[inject]` (see [`strip_inject`]). A
/// parameter that cannot be used is left out (the reason is in `ctxt`).
pub(crate) fn params<'a>(ctxt: &mut Ctxt, func: &'a ItemFn, marked: &[bool], kind: FnKind) -> Vec<Param<'a>> {
    let mut params = Vec::new();
    for (index, input) in func.sig.inputs.iter().enumerate() {
        let typed = match input {
            FnArg::Receiver(receiver) => {
                check_no_receiver(ctxt, receiver, kind);
                continue;
            }
            FnArg::Typed(typed) => typed,
        };
        let injected = marked.get(index).copied().unwrap_or(false) || is_injected_type(&typed.ty);
        check_owned(ctxt, &typed.ty, injected, kind);
        let ident = if injected {
            Some(format_ident!("__errand_inject_{}", index))
        } else if kind == FnKind::Job {
            check_plain_name(ctxt, &typed.pat, &typed.ty)
        } else {
            // A step's inputs are passed positionally: any pattern works.
            Some(format_ident!("__errand_input_{}", index))
        };
        if let Some(ident) = ident {
            params.push(Param { ident, ty: &typed.ty, injected });
        }
    }
    params
}

/// The identifier without `r#`.
pub(crate) trait UnrawString {
    fn unraw_string(&self) -> String;
}

impl UnrawString for Ident {
    fn unraw_string(&self) -> String {
        syn::ext::IdentExt::unraw(self).to_string()
    }
}

// ---------------------------------------------------------------------------
// Checks: one function per rule.

/// The function must be `async`: the worker awaits it.
fn check_async(ctxt: &mut Ctxt, func: &ItemFn, kind: FnKind) {
    if func.sig.asyncness.is_none() {
        let name = &func.sig.ident;
        ctxt.error_spanned_by(func.sig.fn_token, format!("{} must be `async`: write `async fn {name}`", kind.fns()));
    }
}

/// No `unsafe` or `extern "ABI"`: the generated worker calls the function
/// like any safe Rust function.
fn check_plain_fn(ctxt: &mut Ctxt, func: &ItemFn, kind: FnKind) {
    if let syn::Safety::Unsafe(unsafety) = &func.sig.safety {
        ctxt.error_spanned_by(
            unsafety,
            format!(
                "{} cannot be `unsafe`: {} calls them with no way to uphold a safety contract",
                kind.fns(),
                kind.caller()
            ),
        );
    }
    if let Some(abi) = &func.sig.abi {
        ctxt.error_spanned_by(abi, format!("{} cannot have an `extern` ABI", kind.fns()));
    }
}

/// No type, const or lifetime parameters: the stored parameters are decoded
/// into one concrete type, and they own their data.
fn check_generics(ctxt: &mut Ctxt, func: &ItemFn, kind: FnKind) {
    let generics = &func.sig.generics;
    let (noun, args) = (kind.noun(), kind.args());
    for param in &generics.params {
        match param {
            syn::GenericParam::Lifetime(_) => ctxt.error_spanned_by(
                param,
                format!(
                    "{} cannot have lifetime parameters: {noun} {args} are stored, so they must be owned",
                    kind.fns()
                ),
            ),
            syn::GenericParam::Type(_) | syn::GenericParam::Const(_) => ctxt.error_spanned_by(
                param,
                format!(
                    "{} cannot be generic: a {noun}'s {args} are stored and decoded into one concrete type; \
                     write one {noun} per type",
                    kind.fns()
                ),
            ),
        }
    }
    if let Some(where_clause) = &generics.where_clause
        && generics.params.is_empty()
    {
        ctxt.error_spanned_by(where_clause, format!("{} cannot have a `where` clause", kind.fns()));
    }
}

/// A concrete return type: it names the stored output.
fn check_return_type(ctxt: &mut Ctxt, func: &ItemFn, kind: FnKind) {
    if let syn::ReturnType::Type(_, ty) = &func.sig.output {
        let mut finder = Finder::default();
        finder.visit_type(ty);
        if let Some(impl_trait) = finder.impl_trait {
            ctxt.error_spanned_by(
                impl_trait,
                format!(
                    "a {} cannot return `impl Trait`: the output is stored, return a concrete `Result<T, E>`",
                    kind.noun()
                ),
            );
        }
    }
}

/// Jobs and steps are free functions: there is no `self` to store.
fn check_no_receiver(ctxt: &mut Ctxt, receiver: &syn::Receiver, kind: FnKind) {
    let message = match kind {
        FnKind::Job => "a job cannot take `self`: jobs are free functions whose arguments are stored; \
                        move it out of the impl block and pass what it needs as arguments"
            .to_owned(),
        FnKind::Step => "a step cannot take `self`: steps are free functions of the workflow module, \
                         whose inputs are the outputs of the steps they run after"
            .to_owned(),
    };
    ctxt.error_spanned_by(receiver, message);
}

/// Stored parameters must own their data (they are encoded into the task),
/// and injected ones are passed by value.
fn check_owned(ctxt: &mut Ctxt, ty: &Type, injected: bool, kind: FnKind) {
    let (noun, args) = (kind.noun(), kind.args());
    let singular = match kind {
        FnKind::Job => "argument",
        FnKind::Step => "input",
    };
    if let Type::Reference(reference) = ty {
        let inner = &*reference.elem;
        if is_injected_type(inner) || injected {
            ctxt.error_spanned_by(
                ty,
                format!(
                    "injected parameters are passed by value: take `{}` instead of `{}`",
                    pretty(inner),
                    pretty(ty)
                ),
            );
            return;
        }
        let owned = owned_form(inner);
        ctxt.error_spanned_by(ty, format!("{noun} {args} are stored: use {owned} instead of `{}`", pretty(ty)));
        return;
    }
    if let Type::ImplTrait(_) = ty {
        ctxt.error_spanned_by(
            ty,
            format!("`impl Trait` cannot be a {noun} {singular}: {args} are stored, so they need a concrete type"),
        );
        return;
    }
    if injected {
        return;
    }
    let mut finder = Finder::default();
    finder.visit_type(ty);
    if let Some(reference) = finder.reference {
        ctxt.error_spanned_by(
            reference,
            format!("{noun} {args} are stored, so they cannot borrow: use an owned type instead of `{}`", pretty(ty)),
        );
    } else if let Some(impl_trait) = finder.impl_trait {
        ctxt.error_spanned_by(
            impl_trait,
            format!("`impl Trait` cannot be in a {noun} {singular}'s type: use a concrete type"),
        );
    }
}

/// A job's stored argument needs a plain name: it becomes a field of the
/// struct.
fn check_plain_name(ctxt: &mut Ctxt, pat: &Pat, ty: &Type) -> Option<Ident> {
    match pat {
        Pat::Ident(pat_ident) if pat_ident.by_ref.is_none() && pat_ident.subpat.is_none() => {
            Some(pat_ident.ident.clone())
        }
        Pat::Ident(pat_ident) if pat_ident.by_ref.is_some() => {
            ctxt.error_spanned_by(pat, "job arguments are moved into the function: remove `ref`");
            None
        }
        _ => {
            ctxt.error_spanned_by(
                pat,
                format!(
                    "job arguments must be plain names, since each becomes a field of the job struct: \
                     write `name: {}` and destructure it in the body",
                    pretty(ty)
                ),
            );
            None
        }
    }
}

/// Finds the first reference and `impl Trait` inside a type.
#[derive(Default)]
struct Finder<'ast> {
    reference: Option<&'ast syn::TypeReference>,
    impl_trait: Option<&'ast syn::TypeImplTrait>,
}

impl<'ast> Visit<'ast> for Finder<'ast> {
    fn visit_type_reference(&mut self, node: &'ast syn::TypeReference) {
        self.reference.get_or_insert(node);
        syn::visit::visit_type_reference(self, node);
    }

    fn visit_type_impl_trait(&mut self, node: &'ast syn::TypeImplTrait) {
        self.impl_trait.get_or_insert(node);
        syn::visit::visit_type_impl_trait(self, node);
    }
}

/// Whether a parameter of this type is injected without `#[inject]`:
/// `Data<T>`, `TaskCx`, `WorkerCx` (by the last path segment, so
/// `errand::Data<T>` counts too).
fn is_injected_type(ty: &Type) -> bool {
    let Type::Path(path) = ty else { return false };
    path.qself.is_none()
        && path.path.segments.last().is_some_and(|s| s.ident == "Data" || s.ident == "TaskCx" || s.ident == "WorkerCx")
}

/// Marks which parameters carry `#[inject]` and removes the marker, which
/// is not a real attribute.
pub(crate) fn strip_inject(ctxt: &mut Ctxt, func: &mut ItemFn) -> Vec<bool> {
    func.sig
        .inputs
        .iter_mut()
        .map(|input| {
            let attrs = match input {
                FnArg::Typed(typed) => &mut typed.attrs,
                FnArg::Receiver(receiver) => &mut receiver.attrs,
            };
            let mut marked = false;
            attrs.retain(|attr| {
                if !attr.path().is_ident("inject") {
                    return true;
                }
                if !matches!(attr.meta, syn::Meta::Path(_)) {
                    ctxt.error_spanned_by(attr, "`#[inject]` takes no arguments");
                }
                marked = true;
                false
            });
            marked
        })
        .collect()
}

/// The owned type to suggest for `&inner`.
fn owned_form(inner: &Type) -> String {
    match inner {
        Type::Path(p) if p.path.is_ident("str") => "`String`".to_owned(),
        Type::Path(p) if p.path.is_ident("Path") => "`PathBuf`".to_owned(),
        Type::Path(p) if p.path.is_ident("OsStr") => "`OsString`".to_owned(),
        Type::Slice(slice) => format!("`Vec<{}>`", pretty(&slice.elem)),
        Type::TraitObject(_) => "an owned, concrete type".to_owned(),
        other => format!("an owned type (`{}`)", pretty(other)),
    }
}

/// A type as a user would write it (`Vec<u8>`, not `Vec < u8 >`).
pub(crate) fn pretty(ty: &Type) -> String {
    let mut out = ty.to_token_stream().to_string();
    for (from, to) in
        [(" < ", "<"), ("< ", "<"), (" <", "<"), (" >", ">"), (" :: ", "::"), (":: ", "::"), ("& ", "&"), (" ,", ",")]
    {
        out = out.replace(from, to);
    }
    out.replace("& '", "&'")
}

// ---------------------------------------------------------------------------
// Codegen shared by jobs and steps.

/// The function's return type (`()` if none) and the span to report
/// return-type errors at.
pub(crate) fn return_type(func: &ItemFn) -> (TokenStream, Span) {
    match &func.sig.output {
        syn::ReturnType::Type(_, ty) => (ty.to_token_stream(), ty.span()),
        syn::ReturnType::Default => (quote!(()), func.sig.ident.span()),
    }
}

/// `<Ret as IntoJobResult>::Output`: what the function stores, spanned on
/// its return type.
pub(crate) fn output_type(krate: &syn::Path, func: &ItemFn) -> TokenStream {
    let (ret, ret_span) = return_type(func);
    quote_spanned!(ret_span=> <#ret as #krate::IntoJobResult>::Output)
}

/// `<Ret as IntoJobResult>::into_job_result(call)`, spanned on the return
/// type so that a type that is not a job return type is reported there.
pub(crate) fn into_job_result(krate: &syn::Path, func: &ItemFn, call: &TokenStream) -> TokenStream {
    let (ret, ret_span) = return_type(func);
    quote_spanned!(ret_span=> <#ret as #krate::IntoJobResult>::into_job_result(#call))
}

/// `fn requirements(r)` of a `Job` or `Workflow`: declares the shared data
/// every injected parameter (of one job, or of all a workflow's steps)
/// needs, so a worker missing it fails at start. `None` when nothing is
/// injected.
pub(crate) fn requirements_fn<'p, 'a: 'p>(
    krate: &syn::Path,
    params: impl IntoIterator<Item = &'p Param<'a>>,
) -> Option<TokenStream> {
    let requirements = Ident::new("__errand_requirements", proc_macro2::Span::call_site());
    let calls: Vec<TokenStream> = params
        .into_iter()
        .filter(|p| p.injected)
        .map(|p| {
            let ty = p.ty;
            quote_spanned!(ty.span()=> <#ty as #krate::FromTaskCx>::requirements(#requirements);)
        })
        .collect();
    if calls.is_empty() {
        return None;
    }
    Some(quote! {
        fn requirements(#requirements: &mut #krate::Requirements) {
            #(#calls)*
        }
    })
}

/// `let __errand_inject_N = <Ty as FromTaskCx>::from_task_cx(&cx)?;` for
/// each injected parameter, returning the error from the enclosing async
/// block.
pub(crate) fn injections(krate: &syn::Path, params: &[Param<'_>], cx: &Ident) -> TokenStream {
    let lets = params.iter().filter(|p| p.injected).map(|p| {
        let (local, ty) = (&p.ident, p.ty);
        let from = quote_spanned!(ty.span()=> <#ty as #krate::FromTaskCx>::from_task_cx(&#cx));
        quote! {
            let #local = match #from {
                #krate::__private::Result::Ok(value) => value,
                #krate::__private::Result::Err(error) => return #krate::__private::Result::Err(error),
            };
        }
    });
    quote!(#(#lets)*)
}
