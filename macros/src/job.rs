//! `#[errand::job]`: parse → IR → checks → codegen.
//!
//! [`expand`] parses the attribute ([`crate::attr`]) and the function into a
//! [`JobFn`] that keeps the user's syn nodes (so generated code and errors
//! carry their spans), runs one check per rule, and generates the argument
//! struct, its constructor and worker, and the `Job` impl.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{FnArg, Ident, Item, ItemFn, LitStr, Pat, Type};

use crate::attr::{self, JobAttrs, Piece, Unique};
use crate::case::{list, nearest, pascal_case};
use crate::ctxt::Ctxt;
use crate::duration::duration_tokens;

/// Expands `#[errand::job(attr)] item`.
///
/// On any error the item is emitted unchanged (minus `#[inject]` markers)
/// next to one `compile_error!` per mistake, so the function still
/// type-checks and IDEs keep working. When only attribute values are wrong,
/// the job is generated anyway with defaults for them, so that code using
/// `SendEmail` does not add a cascade of "cannot find type" errors.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut ctxt = Ctxt::new();
    let attrs = attr::parse(&mut ctxt, attr);
    let output = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(mut func)) => {
            let marked = strip_inject(&mut ctxt, &mut func);
            let generated = JobFn::from_ast(&mut ctxt, &func, &marked, &attrs).map(|job| job.generate());
            let errors = ctxt.check().err().map(syn::Error::into_compile_error);
            quote!(#func #generated #errors)
        }
        Ok(other) => {
            check_is_fn(&mut ctxt, &other);
            with_errors(item, ctxt.check().err())
        }
        Err(error) => {
            ctxt.syn_error(error);
            with_errors(item, ctxt.check().err())
        }
    };
    if std::env::var_os("ERRAND_MACROS_DEBUG").is_some_and(|v| v == "1") {
        eprintln!("{output}");
    }
    output
}

fn with_errors(mut item: TokenStream, errors: Option<syn::Error>) -> TokenStream {
    item.extend(errors.map(syn::Error::into_compile_error));
    item
}

/// The job as the macro sees it: the user's function and attributes, with
/// the parameters sorted into stored and injected ones.
struct JobFn<'a> {
    func: &'a ItemFn,
    attrs: &'a JobAttrs,
    /// `SendEmail`, spanned on the function's name.
    ident: Ident,
    /// The path errand is reachable at: `::errand` unless `crate = "..."`.
    krate: syn::Path,
    params: Vec<Param<'a>>,
}

/// One parameter of the job function.
struct Param<'a> {
    /// The stored field's name; for injected parameters, a generated local.
    ident: Ident,
    ty: &'a Type,
    injected: bool,
}

impl<'a> JobFn<'a> {
    /// Builds the IR and runs every check on the function; `None` if it
    /// cannot be turned into a job (the reasons are in `ctxt`).
    fn from_ast(ctxt: &mut Ctxt, func: &'a ItemFn, marked: &[bool], attrs: &'a JobAttrs) -> Option<Self> {
        let errors_before = ctxt.len();
        check_async(ctxt, func);
        check_plain_fn(ctxt, func);
        check_generics(ctxt, func);
        check_return_type(ctxt, func);
        let mut params = Vec::new();
        for (index, input) in func.sig.inputs.iter().enumerate() {
            let typed = match input {
                FnArg::Receiver(receiver) => {
                    check_no_receiver(ctxt, receiver);
                    continue;
                }
                FnArg::Typed(typed) => typed,
            };
            let injected = marked.get(index).copied().unwrap_or(false) || is_injected_type(&typed.ty);
            check_owned(ctxt, &typed.ty, injected);
            let ident = if injected {
                Some(format_ident!("__errand_inject_{}", index))
            } else {
                check_plain_name(ctxt, &typed.pat, &typed.ty)
            };
            if let Some(ident) = ident {
                params.push(Param { ident, ty: &typed.ty, injected });
            }
        }
        check_unique_template(ctxt, attrs, func, &params);
        let ident = Ident::new(&pascal_case(&func.sig.ident.unraw_string()), func.sig.ident.span());
        let krate = attrs.krate.clone().unwrap_or_else(|| syn::parse_quote!(::errand));
        (ctxt.len() == errors_before).then_some(JobFn { func, attrs, ident, krate, params })
    }
}

trait UnrawString {
    fn unraw_string(&self) -> String;
}

impl UnrawString for Ident {
    fn unraw_string(&self) -> String {
        syn::ext::IdentExt::unraw(self).to_string()
    }
}

// ---------------------------------------------------------------------------
// Checks: one function per rule.

/// `#[errand::job]` only goes on functions; say what to do for the common
/// other items.
fn check_is_fn(ctxt: &mut Ctxt, item: &Item) {
    let (what, head, hint): (&str, TokenStream, &str) = match item {
        Item::Struct(s) => {
            let (token, ident) = (&s.struct_token, &s.ident);
            ("a struct", quote!(#token #ident), "; to use a struct as a job, implement `errand::Job` for it")
        }
        Item::Enum(e) => ("an enum", e.enum_token.into_token_stream(), "; implement `errand::Job` for it instead"),
        Item::Impl(i) => {
            ("an impl block", i.impl_token.into_token_stream(), "; put it on a free `async fn` outside the impl block")
        }
        Item::Mod(m) => ("a module", m.mod_token.into_token_stream(), ""),
        Item::Trait(t) => ("a trait", t.trait_token.into_token_stream(), ""),
        Item::Const(c) => ("a const", c.const_token.into_token_stream(), ""),
        Item::Static(s) => ("a static", s.static_token.into_token_stream(), ""),
        other => ("this item", other.into_token_stream(), ""),
    };
    ctxt.error_spanned_by(head, format!("`#[errand::job]` goes on an `async fn`, not on {what}{hint}"));
}

/// The function must be `async`: the worker awaits it.
fn check_async(ctxt: &mut Ctxt, func: &ItemFn) {
    if func.sig.asyncness.is_none() {
        let name = &func.sig.ident;
        ctxt.error_spanned_by(func.sig.fn_token, format!("job functions must be `async`: write `async fn {name}`"));
    }
}

/// No `unsafe` or `extern "ABI"`: the generated worker calls the function
/// like any safe Rust function.
fn check_plain_fn(ctxt: &mut Ctxt, func: &ItemFn) {
    if let Some(unsafety) = &func.sig.unsafety {
        ctxt.error_spanned_by(
            unsafety,
            "job functions cannot be `unsafe`: the worker calls them with no way to uphold a safety contract",
        );
    }
    if let Some(abi) = &func.sig.abi {
        ctxt.error_spanned_by(abi, "job functions cannot have an `extern` ABI");
    }
}

/// No type, const or lifetime parameters: the stored arguments are decoded
/// into one concrete type, and they own their data.
fn check_generics(ctxt: &mut Ctxt, func: &ItemFn) {
    let generics = &func.sig.generics;
    for param in &generics.params {
        match param {
            syn::GenericParam::Lifetime(_) => ctxt.error_spanned_by(
                param,
                "job functions cannot have lifetime parameters: job arguments are stored, so they must be owned",
            ),
            syn::GenericParam::Type(_) | syn::GenericParam::Const(_) => ctxt.error_spanned_by(
                param,
                "job functions cannot be generic: a job's arguments are stored and decoded into one concrete type; \
                 write one job per type",
            ),
        }
    }
    if let Some(where_clause) = &generics.where_clause {
        if generics.params.is_empty() {
            ctxt.error_spanned_by(where_clause, "job functions cannot have a `where` clause");
        }
    }
}

/// A concrete return type: it names the stored output.
fn check_return_type(ctxt: &mut Ctxt, func: &ItemFn) {
    if let syn::ReturnType::Type(_, ty) = &func.sig.output {
        let mut finder = Finder::default();
        finder.visit_type(ty);
        if let Some(impl_trait) = finder.impl_trait {
            ctxt.error_spanned_by(
                impl_trait,
                "a job cannot return `impl Trait`: the output is stored, return a concrete `Result<T, E>`",
            );
        }
    }
}

/// Jobs are free functions: there is no `self` to store.
fn check_no_receiver(ctxt: &mut Ctxt, receiver: &syn::Receiver) {
    ctxt.error_spanned_by(
        receiver,
        "a job cannot take `self`: jobs are free functions whose arguments are stored; \
         move it out of the impl block and pass what it needs as arguments",
    );
}

/// Stored arguments must own their data (they are encoded into the task),
/// and injected ones are passed by value.
fn check_owned(ctxt: &mut Ctxt, ty: &Type, injected: bool) {
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
        ctxt.error_spanned_by(ty, format!("job arguments are stored: use {owned} instead of `{}`", pretty(ty)));
        return;
    }
    if let Type::ImplTrait(_) = ty {
        ctxt.error_spanned_by(
            ty,
            "`impl Trait` cannot be a job argument: arguments are stored, so they need a concrete type",
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
            format!("job arguments are stored, so they cannot borrow: use an owned type instead of `{}`", pretty(ty)),
        );
    } else if let Some(impl_trait) = finder.impl_trait {
        ctxt.error_spanned_by(impl_trait, "`impl Trait` cannot be in a job argument's type: use a concrete type");
    }
}

/// A stored argument needs a plain name: it becomes a field of the struct.
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

/// Every `{name}` of a `unique = "..."` template names a stored argument.
fn check_unique_template(ctxt: &mut Ctxt, attrs: &JobAttrs, func: &ItemFn, params: &[Param<'_>]) {
    let Some(Unique::Template { lit, pieces }) = &attrs.unique else {
        return;
    };
    let stored: Vec<String> = params.iter().filter(|p| !p.injected).map(|p| p.ident.unraw_string()).collect();
    let stored_refs: Vec<&str> = stored.iter().map(String::as_str).collect();
    let injected: Vec<String> = func
        .sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(typed) => match &*typed.pat {
                Pat::Ident(p) if !stored.contains(&p.ident.unraw_string()) => Some(p.ident.unraw_string()),
                _ => None,
            },
            FnArg::Receiver(_) => None,
        })
        .collect();
    let available = if stored.is_empty() {
        "this job has no stored arguments".to_owned()
    } else {
        match stored_refs.as_slice() {
            [only] => format!("the only stored argument is `{only}`"),
            all => format!("the stored arguments are {}", list(all, "and")),
        }
    };
    for piece in pieces {
        let Piece::Arg(name) = piece else { continue };
        if stored.contains(name) {
            continue;
        }
        let message = if injected.contains(name) {
            format!("`{name}` is injected, not stored, so it cannot be part of the unique key: {available}")
        } else {
            let hint = nearest(name, &stored_refs).map(|n| format!("did you mean `{{{n}}}`? ")).unwrap_or_default();
            format!("unknown argument `{{{name}}}` in the unique key: {hint}{available}")
        };
        ctxt.error_spanned_by(lit, message);
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
fn strip_inject(ctxt: &mut Ctxt, func: &mut ItemFn) -> Vec<bool> {
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
fn pretty(ty: &Type) -> String {
    let mut out = ty.to_token_stream().to_string();
    for (from, to) in
        [(" < ", "<"), ("< ", "<"), (" <", "<"), (" >", ">"), (" :: ", "::"), (":: ", "::"), ("& ", "&"), (" ,", ",")]
    {
        out = out.replace(from, to);
    }
    out.replace("& '", "&'")
}

// ---------------------------------------------------------------------------
// Codegen.

impl JobFn<'_> {
    fn generate(&self) -> TokenStream {
        let args_struct = self.args_struct();
        let inherent = self.inherent_impl();
        let job_impl = self.job_impl();
        quote! {
            #args_struct
            #inherent
            #job_impl
        }
    }

    fn stored(&self) -> impl Iterator<Item = &Param<'_>> {
        self.params.iter().filter(|p| !p.injected)
    }

    fn fn_name(&self) -> String {
        self.func.sig.ident.unraw_string()
    }

    /// The function's return type (`()` if none) and the span to report
    /// return-type errors at.
    fn return_type(&self) -> (TokenStream, Span) {
        match &self.func.sig.output {
            syn::ReturnType::Type(_, ty) => (ty.to_token_stream(), ty.span()),
            syn::ReturnType::Default => (quote!(()), self.func.sig.ident.span()),
        }
    }

    /// `pub struct SendEmail { pub to: String, ... }` with serde derives.
    fn args_struct(&self) -> TokenStream {
        let krate = &self.krate;
        let vis = &self.func.vis;
        let ident = &self.ident;
        let serde_path = quote!(#krate::__private::serde).to_string().replace(' ', "");
        let serde_path = LitStr::new(&serde_path, Span::call_site());
        let doc = format!(
            " The stored arguments of the `{}` job, generated by `#[errand::job]`.\n\n \
             Enqueue one with `backend.enqueue({ident}::new(...))`; run them with `{ident}::worker(&backend)`.",
            self.fn_name()
        );
        let fields = self.stored().map(|p| {
            let (field, ty) = (&p.ident, p.ty);
            let doc = format!(" The `{}` argument.", field.unraw_string());
            // serde_derive spans its errors on a field's first token: make it
            // the user's type, so "`Mailer: Serialize` is not satisfied"
            // points at the argument.
            quote_spanned!(ty.span()=> #[doc = #doc] #vis #field: #ty)
        });
        let serialize = self.serialize_impl();
        quote! {
            #[doc = #doc]
            #[derive(#krate::__private::serde::Deserialize, ::core::fmt::Debug, ::core::clone::Clone)]
            #[serde(crate = #serde_path)]
            #vis struct #ident {
                #(#fields,)*
            }

            #serialize
        }
    }

    /// `Serialize`, written out (as `#[derive(Serialize)]` would, a struct
    /// of the fields in order) so that a field type that is not `Serialize`
    /// is reported on the user's argument rather than on the attribute.
    fn serialize_impl(&self) -> TokenStream {
        let krate = &self.krate;
        let ident = &self.ident;
        let name = ident.to_string();
        let count = self.stored().count();
        let serde = quote!(#krate::__private::serde);
        let fields = self.stored().map(|p| {
            let (field, ty) = (&p.ident, p.ty);
            let key = field.unraw_string();
            quote_spanned!(ty.span()=> #serde::ser::SerializeStruct::serialize_field(&mut __errand_state, #key, &self.#field)?;)
        });
        let state_mut = (count > 0).then(|| quote!(mut));
        quote! {
            #[doc(hidden)]
            const _: () = {
                #[automatically_derived]
                impl #serde::Serialize for #ident {
                    fn serialize<__S: #serde::Serializer>(
                        &self,
                        __errand_serializer: __S,
                    ) -> #krate::__private::Result<__S::Ok, __S::Error> {
                        let #state_mut __errand_state =
                            #serde::Serializer::serialize_struct(__errand_serializer, #name, #count)?;
                        #(#fields)*
                        #serde::ser::SerializeStruct::end(__errand_state)
                    }
                }
            };
        }
    }

    /// `SendEmail::new(..)` and `SendEmail::worker(&backend)`.
    fn inherent_impl(&self) -> TokenStream {
        let krate = &self.krate;
        let vis = &self.func.vis;
        let ident = &self.ident;
        let fields: Vec<&Ident> = self.stored().map(|p| &p.ident).collect();
        let types: Vec<&Type> = self.stored().map(|p| p.ty).collect();
        let name = self.fn_name();
        let new_doc = format!(" The arguments of a `{name}` job, in the order of the function's parameters.");
        let worker_doc = format!(
            " A worker for `{name}` jobs on `backend`, with the retry, backoff and timeout \
             defaults of the attribute.\n\n Give it the data the job needs with `.data(...)` and register it \
             with a `Monitor`."
        );
        quote! {
            impl #ident {
                #[doc = #new_doc]
                #[allow(clippy::too_many_arguments, clippy::new_without_default)]
                #[must_use]
                #vis fn new(#(#fields: #types),*) -> Self {
                    Self { #(#fields),* }
                }

                #[doc = #worker_doc]
                #vis fn worker<B: #krate::Backend>(backend: &B) -> #krate::WorkerBuilder<Self, B> {
                    #krate::WorkerBuilder::new(::core::clone::Clone::clone(backend))
                }
            }
        }
    }

    /// `impl Job for SendEmail` inside `const _: () = { ... };`.
    fn job_impl(&self) -> TokenStream {
        let krate = &self.krate;
        let ident = &self.ident;
        let name = match &self.attrs.name {
            Some(lit) => lit.clone(),
            None => LitStr::new(&self.fn_name(), self.func.sig.ident.span()),
        };
        let queue = self.attrs.queue.as_ref().map(|q| quote!(const QUEUE: &'static str = #q;));
        let (ret, ret_span) = self.return_type();
        let output = quote_spanned!(ret_span=> type Output = <#ret as #krate::IntoJobResult>::Output;);
        let options = self.options_fn();
        let unique = self.unique_fn();
        let requirements = self.requirements_fn();
        let run = self.run_fn();
        quote! {
            #[doc(hidden)]
            #[allow(non_upper_case_globals, unused_qualifications, clippy::all)]
            const _: () = {
                #[automatically_derived]
                impl #krate::Job for #ident {
                    const NAME: &'static str = #name;
                    #queue
                    #output
                    #options
                    #unique
                    #requirements
                    #run
                }
            };
        }
    }

    fn options_fn(&self) -> Option<TokenStream> {
        let krate = &self.krate;
        let attrs = self.attrs;
        let mut fields = Vec::new();
        if let Some(retries) = attrs.retries {
            fields.push(quote!(retries: #retries));
        }
        if let Some(backoff) = &attrs.backoff {
            let backoff = backoff.to_tokens(krate);
            fields.push(quote!(backoff: #backoff));
        }
        if let Some(timeout) = attrs.timeout {
            let timeout = duration_tokens(krate, timeout);
            fields.push(quote!(timeout: #krate::__private::Option::Some(#timeout)));
        }
        if let Some(priority) = attrs.priority {
            fields.push(quote!(priority: #priority));
        }
        if let Some(unique_for) = attrs.unique_for {
            let unique_for = duration_tokens(krate, unique_for);
            fields.push(quote!(unique_for: #krate::__private::Option::Some(#unique_for)));
        }
        if fields.is_empty() {
            return None;
        }
        Some(quote! {
            fn options() -> #krate::JobOptions {
                #krate::JobOptions { #(#fields,)* ..#krate::JobOptions::DEFAULT }
            }
        })
    }

    fn unique_fn(&self) -> Option<TokenStream> {
        let krate = &self.krate;
        let body = match self.attrs.unique.as_ref()? {
            Unique::Args => quote! {
                #krate::__private::unique_args_key(<Self as #krate::Job>::NAME, self)
            },
            Unique::Template { lit, pieces } => {
                let mut format = String::from("{}:");
                let mut args = Vec::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(text) => format.push_str(&text.replace('{', "{{").replace('}', "}}")),
                        Piece::Arg(name) => {
                            format.push_str("{}");
                            if let Some(param) = self.stored().find(|p| p.ident.unraw_string() == *name) {
                                let field = &param.ident;
                                args.push(quote_spanned!(lit.span()=> &self.#field));
                            }
                        }
                    }
                }
                let format = LitStr::new(&format, lit.span());
                quote! {
                    #krate::__private::Option::Some(
                        #krate::__private::format!(#format, <Self as #krate::Job>::NAME #(, #args)*)
                    )
                }
            }
        };
        Some(quote! {
            fn unique_key(&self) -> #krate::__private::Option<#krate::__private::String> {
                #body
            }
        })
    }

    fn requirements_fn(&self) -> Option<TokenStream> {
        let krate = &self.krate;
        let calls: Vec<TokenStream> = self
            .params
            .iter()
            .filter(|p| p.injected)
            .map(|p| {
                let ty = p.ty;
                quote_spanned!(ty.span()=> <#ty as #krate::FromTaskCx>::requirements(__errand_requirements);)
            })
            .collect();
        if calls.is_empty() {
            return None;
        }
        Some(quote! {
            fn requirements(__errand_requirements: &mut #krate::Requirements) {
                #(#calls)*
            }
        })
    }

    fn run_fn(&self) -> TokenStream {
        let krate = &self.krate;
        let func = &self.func.sig.ident;
        let injections = self.params.iter().filter(|p| p.injected).map(|p| {
            let (local, ty) = (&p.ident, p.ty);
            let from = quote_spanned!(ty.span()=> <#ty as #krate::FromTaskCx>::from_task_cx(&__errand_cx));
            quote! {
                let #local = match #from {
                    #krate::__private::Result::Ok(value) => value,
                    #krate::__private::Result::Err(error) => return #krate::__private::Result::Err(error),
                };
            }
        });
        let call_args = self.params.iter().map(|p| {
            let ident = &p.ident;
            if p.injected { quote!(#ident) } else { quote!(self.#ident) }
        });
        let call = quote_spanned!(func.span()=> #func(#(#call_args),*).await);
        // Uses of the return type are spanned on it, so that a type that is
        // not a job return type is reported there; the future on the
        // function's name, so that a future that is not `Send` is reported
        // there.
        let (ret, ret_span) = self.return_type();
        let into_result = quote_spanned!(ret_span=> <#ret as #krate::IntoJobResult>::into_job_result(#call));
        let output = quote_spanned!(ret_span=> <#ret as #krate::IntoJobResult>::Output);
        let body = quote_spanned! {func.span()=>
            async move {
                #(#injections)*
                #into_result
            }
        };
        quote_spanned! {func.span()=>
            fn run(
                self,
                __errand_cx: #krate::TaskCx,
            ) -> impl #krate::__private::Future<
                Output = #krate::__private::Result<#output, #krate::JobError>,
            > + ::core::marker::Send {
                #body
            }
        }
    }
}
