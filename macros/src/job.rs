//! `#[errand::job]`: parse → IR → checks → codegen.
//!
//! [`expand`] parses the attribute ([`crate::attr`]) and the function into a
//! [`JobFn`] that keeps the user's syn nodes (so generated code and errors
//! carry their spans), runs one check per rule, and generates the argument
//! struct, its constructor and worker, and the `Job` impl.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, Ident, Item, ItemFn, LitStr, Pat, Type};

use crate::attr::{self, AttrKind, Attrs, Piece, Unique};
use crate::case::{list, nearest, pascal_case};
use crate::ctxt::{Ctxt, debug_expansion, with_errors};
use crate::sig::{self, FnKind, Param, UnrawString};

/// Expands `#[errand::job(attr)] item`.
///
/// On any error the item is emitted unchanged (minus `#[inject]` markers)
/// next to one `compile_error!` per mistake, so the function still
/// type-checks and IDEs keep working. When only attribute values are wrong,
/// the job is generated anyway with defaults for them, so that code using
/// `SendEmail` does not add a cascade of "cannot find type" errors.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut ctxt = Ctxt::new();
    let attrs = attr::parse(&mut ctxt, attr, AttrKind::Job);
    let output = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(mut func)) => {
            let marked = sig::strip_inject(&mut ctxt, &mut func);
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
    debug_expansion(&output);
    output
}

/// The job as the macro sees it: the user's function and attributes, with
/// the parameters sorted into stored and injected ones.
struct JobFn<'a> {
    func: &'a ItemFn,
    attrs: &'a Attrs,
    /// `SendEmail`, spanned on the function's name.
    ident: Ident,
    /// The path errand is reachable at: `::errand` unless `crate = "..."`.
    krate: syn::Path,
    params: Vec<Param<'a>>,
}

impl<'a> JobFn<'a> {
    /// Builds the IR and runs every check on the function; `None` if it
    /// cannot be turned into a job (the reasons are in `ctxt`).
    fn from_ast(ctxt: &mut Ctxt, func: &'a ItemFn, marked: &[bool], attrs: &'a Attrs) -> Option<Self> {
        let errors_before = ctxt.len();
        sig::check_fn(ctxt, func, FnKind::Job);
        let params = sig::params(ctxt, func, marked, FnKind::Job);
        check_unique_template(ctxt, attrs, func, &params);
        check_schedule(ctxt, attrs, &params);
        let ident = Ident::new(&pascal_case(&func.sig.ident.unraw_string()), func.sig.ident.span());
        let krate = attrs.krate.clone().unwrap_or_else(|| syn::parse_quote!(::errand));
        (ctxt.len() == errors_before).then_some(JobFn { func, attrs, ident, krate, params })
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

/// Every `{name}` of a `unique = "..."` template names a stored argument.
fn check_unique_template(ctxt: &mut Ctxt, attrs: &Attrs, func: &ItemFn, params: &[Param<'_>]) {
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

/// `timezone` and `missed` need `cron`; a cron job's only stored argument
/// may be a `Tick`, since the schedule has nothing else to give it.
fn check_schedule(ctxt: &mut Ctxt, attrs: &Attrs, params: &[Param<'_>]) {
    if !attrs.cron_written {
        for (span, key) in &attrs.schedule_keys {
            ctxt.error_at(
                *span,
                format!("`{key}` applies to a schedule: add `cron = \"…\"` (e.g. `cron = \"0 0 6 * * *\"`), or remove `{key}`"),
            );
        }
        return;
    }
    let stored: Vec<&Param<'_>> = params.iter().filter(|p| !p.injected).collect();
    let is_tick = |ty: &Type| matches!(ty, Type::Path(p) if p.qself.is_none() && p.path.segments.last().is_some_and(|s| s.ident == "Tick"));
    // At most one `Tick`, and nothing else: flag the others (and a second `Tick`).
    let first_tick = stored.iter().position(|p| is_tick(p.ty));
    for (_, param) in stored.iter().enumerate().filter(|(i, _)| Some(*i) != first_tick) {
        ctxt.error_spanned_by(
            param.ty,
            format!(
                "a cron job takes no stored arguments except one `Tick` (the time the tick was scheduled for): \
                 its tasks are made by the schedule, which has nothing else to give; pass `{}` as shared data \
                 (`Data<T>`, given to the worker with `.data(…)`) or remove it",
                param.ident.unraw_string()
            ),
        );
    }
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
        let (worker, require) = self.worker_fns(&worker_doc);
        quote! {
            impl #ident {
                #[doc = #new_doc]
                #[allow(clippy::too_many_arguments, clippy::new_without_default)]
                #[must_use]
                #vis fn new(#(#fields: #types),*) -> Self {
                    Self { #(#fields),* }
                }

                #worker
            }
            #require
        }
    }

    /// `worker(&backend)`, and for a cron job `schedule()` and the check
    /// that errand's `cron` feature is on.
    fn worker_fns(&self, worker_doc: &str) -> (TokenStream, Option<TokenStream>) {
        let krate = &self.krate;
        let vis = &self.func.vis;
        let Some(cron) = &self.attrs.cron else {
            let worker = quote! {
                #[doc = #worker_doc]
                #vis fn worker<B: #krate::Backend>(backend: &B) -> #krate::WorkerBuilder<Self, B> {
                    #krate::WorkerBuilder::new(::core::clone::Clone::clone(backend))
                }
            };
            return (worker, None);
        };
        let timezone = self.attrs.timezone.as_ref().map_or_else(|| "UTC".to_owned(), LitStr::value);
        let missed = self.attrs.missed.as_ref().map_or_else(|| "once".to_owned(), LitStr::value);
        let make = match self.stored().next() {
            Some(tick) => {
                let field = &tick.ident;
                quote!(|tick| Self { #field: tick })
            }
            None => quote!(|_tick| Self {}),
        };
        let name = self.fn_name();
        let schedule_doc =
            format!(" The schedule of `{name}` jobs: `{}` in {timezone}, missed ticks `{missed}`.", cron.value());
        let worker_doc = format!(
            "{worker_doc}\n\n The worker also runs the job's schedule, `{}` in {timezone}: each tick is enqueued \
             once however many processes run it. Needs a backend with `Schedules`.",
            cron.value()
        );
        let worker = quote! {
            #[doc = #schedule_doc]
            #vis fn schedule() -> #krate::cron::CronSchedule {
                #krate::cron::CronSchedule::__checked(#cron, #timezone, #missed)
            }

            #[doc = #worker_doc]
            #vis fn worker<B: #krate::capability::Schedules>(backend: &B) -> #krate::WorkerBuilder<Self, B> {
                #krate::WorkerBuilder::new(::core::clone::Clone::clone(backend)).schedule(Self::schedule(), #make)
            }
        };
        let require = quote_spanned!(cron.span()=> #krate::__require_cron_feature!{});
        (worker, Some(require))
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
        let output = sig::output_type(krate, self.func);
        let output = quote!(type Output = #output;);
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
        let options = self.attrs.job_options(krate)?;
        Some(quote! {
            fn options() -> #krate::JobOptions {
                #options
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
        sig::requirements_fn(&self.krate, &self.params)
    }

    fn run_fn(&self) -> TokenStream {
        let krate = &self.krate;
        let func = &self.func.sig.ident;
        let cx = Ident::new("__errand_cx", Span::call_site());
        let injections = sig::injections(krate, &self.params, &cx);
        let call_args = self.params.iter().map(|p| {
            let ident = &p.ident;
            if p.injected { quote!(#ident) } else { quote!(self.#ident) }
        });
        let call = quote_spanned!(func.span()=> #func(#(#call_args),*).await);
        // Uses of the return type are spanned on it, so that a type that is
        // not a job return type is reported there; the future on the
        // function's name, so that a future that is not `Send` is reported
        // there.
        let into_result = sig::into_job_result(krate, self.func, &call);
        let output = sig::output_type(krate, self.func);
        let body = quote_spanned! {func.span()=>
            async move {
                #injections
                #into_result
            }
        };
        quote_spanned! {func.span()=>
            fn run(
                self,
                #cx: #krate::TaskCx,
            ) -> impl #krate::__private::Future<
                Output = #krate::__private::Result<#output, #krate::JobError>,
            > + ::core::marker::Send {
                #body
            }
        }
    }
}
