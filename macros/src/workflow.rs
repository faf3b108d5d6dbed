//! `#[errand::workflow]` (with `#[dag_step]` and `#[step]`): parse → IR →
//! checks → codegen.
//!
//! [`expand`] takes the module, finds its step functions by their
//! `#[dag_step]` / `#[step]` markers (which it removes: they are not expanded
//! on their own), and builds a [`WorkflowMod`] that keeps the user's syn
//! nodes. Each step's function goes through the same checks as a
//! `#[errand::job]` function ([`crate::sig`]); the graph is then checked as
//! a whole (names in `after`, cycles, one input per dependency). The types
//! that flow along the graph are left to rustc: the expansion contains
//! small assertion functions spanned on the user's argument types, so a step
//! that takes a `User` after a step that returns a `MessageId` gets rustc's
//! own "mismatched types" on its argument.
//!
//! [`expand_outside`] is the standalone `#[dag_step]` / `#[step]`: reached
//! only when the marker is not inside a workflow module.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Attribute, Ident, Item, ItemFn, ItemMod, LitStr, Type, Visibility};

use crate::attr::{self, AttrKind, Attrs};
use crate::case::{list, nearest, pascal_case};
use crate::ctxt::{Ctxt, debug_expansion, with_errors};
use crate::sig::{self, FnKind, Param, UnrawString};

/// Expands `#[errand::workflow(attr)] item`.
///
/// On any error the module is emitted with its step markers and `#[inject]`
/// markers removed (so its functions still type-check and no "cannot find
/// attribute `dag_step`" follows) next to one `compile_error!` per mistake.
/// When only attribute values are wrong (`retries = -1`), the workflow is
/// generated anyway with defaults for them.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut ctxt = Ctxt::new();
    let attrs = attr::parse(&mut ctxt, attr, AttrKind::Workflow);
    let output = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Mod(mut module)) => {
            let found = match &mut module.content {
                Some((_, items)) => find_steps(&mut ctxt, items),
                None => {
                    check_inline(&mut ctxt, &module);
                    Vec::new()
                }
            };
            let generated = if module.content.is_some() {
                WorkflowMod::from_ast(&mut ctxt, &module, &found, &attrs).map(|workflow| workflow.generate())
            } else {
                None
            };
            if let (Some(generated), Some((_, items))) = (generated, &mut module.content) {
                items.push(Item::Verbatim(generated));
            }
            let errors = ctxt.check().err().map(syn::Error::into_compile_error);
            quote!(#module #errors)
        }
        Ok(other) => {
            check_is_mod(&mut ctxt, &other);
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

/// Expands a `#[dag_step]` or `#[step]` that no `#[errand::workflow]`
/// module removed: it is not inside one, which is an error.
pub(crate) fn expand_outside(marker: &str, item: TokenStream) -> TokenStream {
    let error = syn::Error::new(
        Span::call_site(),
        format!(
            "`#[{marker}]` only works on an `async fn` inside a `#[errand::workflow]` module: it marks one step \
             of the workflow; put `#[errand::workflow]` on the enclosing `mod` (for a job on its own, use \
             `#[errand::job]`)"
        ),
    );
    let output = with_errors(item, Some(error));
    debug_expansion(&output);
    output
}

/// Which marker a step carries; a module uses one of them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StepKind {
    /// `#[dag_step]`: a node of a graph, ordered by `after`.
    Dag,
    /// `#[step]`: a stage of a pipeline, in the order written.
    Linear,
}

impl StepKind {
    /// Whether `attr` is a step marker, and which: `dag_step`, `step`, or a
    /// path ending in them (`errand::dag_step`).
    fn of(attr: &Attribute) -> Option<Self> {
        let last = attr.path().segments.last()?;
        if !last.arguments.is_none() {
            return None;
        }
        if last.ident == "dag_step" {
            Some(StepKind::Dag)
        } else if last.ident == "step" {
            Some(StepKind::Linear)
        } else {
            None
        }
    }

    fn attr_kind(self) -> AttrKind {
        match self {
            StepKind::Dag => AttrKind::DagStep,
            StepKind::Linear => AttrKind::Step,
        }
    }

    fn marker(self) -> &'static str {
        match self {
            StepKind::Dag => "#[dag_step]",
            StepKind::Linear => "#[step]",
        }
    }
}

/// A step function found in the module, with its marker removed.
struct Found {
    /// Its position among the module's items.
    index: usize,
    kind: StepKind,
    /// The marker as written, for its arguments and spans.
    marker: Attribute,
    /// Which parameters carried `#[inject]`.
    inject: Vec<bool>,
}

/// Finds the step functions of the module and removes their markers and
/// their parameters' `#[inject]` markers.
fn find_steps(ctxt: &mut Ctxt, items: &mut [Item]) -> Vec<Found> {
    let mut found = Vec::new();
    for (index, item) in items.iter_mut().enumerate() {
        let Item::Fn(func) = item else { continue };
        let mut markers = Vec::new();
        func.attrs.retain(|attr| match StepKind::of(attr) {
            Some(kind) => {
                markers.push((kind, attr.clone()));
                false
            }
            None => true,
        });
        let mut markers = markers.into_iter();
        let Some((kind, marker)) = markers.next() else { continue };
        for (_, extra) in markers {
            ctxt.error_spanned_by(
                &extra,
                format!("`{}` is already a step: give it one step attribute", func.sig.ident.unraw_string()),
            );
        }
        let inject = sig::strip_inject(ctxt, func);
        found.push(Found { index, kind, marker, inject });
    }
    found
}

/// The workflow as the macro sees it.
struct WorkflowMod<'a> {
    module: &'a ItemMod,
    attrs: &'a Attrs,
    /// `Onboarding`, spanned on the module's name.
    ident: Ident,
    /// The path errand is reachable at: `::errand` unless `crate = "..."`.
    krate: syn::Path,
    steps: Vec<Step<'a>>,
}

/// One step: its function, its options and the steps it runs after.
struct Step<'a> {
    func: &'a ItemFn,
    attrs: Attrs,
    params: Vec<Param<'a>>,
    /// The steps whose outputs it takes, in argument order; empty for an
    /// entry step.
    after: Vec<usize>,
    /// The names as written in `after`, for spans (empty for `#[step]`).
    after_names: Vec<Ident>,
}

impl Step<'_> {
    fn name(&self) -> String {
        self.func.sig.ident.unraw_string()
    }

    fn stored(&self) -> impl Iterator<Item = &Param<'_>> {
        self.params.iter().filter(|p| !p.injected)
    }

    fn is_entry(&self) -> bool {
        self.after.is_empty()
    }
}

impl<'a> WorkflowMod<'a> {
    /// Builds the IR and runs every check; `None` if no workflow can be
    /// generated (the reasons are in `ctxt`).
    fn from_ast(ctxt: &mut Ctxt, module: &'a ItemMod, found: &'a [Found], attrs: &'a Attrs) -> Option<Self> {
        let items = &module.content.as_ref()?.1;
        if found.is_empty() {
            check_has_steps(ctxt, module, items);
            return None;
        }
        // Attribute values first: a wrong value does not stop generation.
        let step_attrs: Vec<Attrs> = found.iter().map(|f| step_attrs(ctxt, f)).collect();
        let errors_before = ctxt.len();
        let kind = found[0].kind;
        check_one_kind(ctxt, found);
        let mut steps = Vec::new();
        for (found, attrs) in found.iter().zip(step_attrs) {
            let Some(Item::Fn(func)) = items.get(found.index) else { continue };
            sig::check_fn(ctxt, func, FnKind::Step);
            let params = sig::params(ctxt, func, &found.inject, FnKind::Step);
            steps.push(Step { func, attrs, params, after: Vec::new(), after_names: Vec::new() });
        }
        check_unique_names(ctxt, &steps);
        match kind {
            StepKind::Dag => {
                resolve_after(ctxt, &mut steps, items);
                check_acyclic(ctxt, &steps);
                check_dag_inputs(ctxt, &steps);
            }
            StepKind::Linear => {
                for (index, step) in steps.iter_mut().enumerate().skip(1) {
                    step.after = vec![index - 1];
                }
                check_pipeline_inputs(ctxt, &steps);
            }
        }
        check_step_count(ctxt, module, &steps);
        let ident = Ident::new(&pascal_case(&module.ident.unraw_string()), module.ident.span());
        let krate = attrs.krate.clone().unwrap_or_else(|| syn::parse_quote!(::errand));
        (ctxt.len() == errors_before).then_some(WorkflowMod { module, attrs, ident, krate, steps })
    }
}

/// Parses a step marker's arguments with the keys of its kind.
fn step_attrs(ctxt: &mut Ctxt, found: &Found) -> Attrs {
    let kind = found.kind.attr_kind();
    match &found.marker.meta {
        syn::Meta::Path(_) => Attrs::default(),
        syn::Meta::List(list) => attr::parse(ctxt, list.tokens.clone(), kind),
        syn::Meta::NameValue(nv) => {
            ctxt.error_spanned_by(
                nv,
                format!(
                    "write the step's options in parentheses, e.g. `{}`",
                    match found.kind {
                        StepKind::Dag => "#[dag_step(after = fetch_user, retries = 5)]",
                        StepKind::Linear => "#[step(retries = 5)]",
                    }
                ),
            );
            Attrs::default()
        }
    }
}

// ---------------------------------------------------------------------------
// Checks: one function per rule.

/// `#[errand::workflow]` only goes on modules; say what to do for the
/// common other items.
fn check_is_mod(ctxt: &mut Ctxt, item: &Item) {
    let (what, head, hint): (&str, TokenStream, &str) = match item {
        Item::Fn(f) => (
            "a function",
            f.sig.fn_token.into_token_stream(),
            "; for a single job, use `#[errand::job]`; for several steps, put them in a module: \
             `#[errand::workflow] mod name { #[dag_step] async fn ... }`",
        ),
        Item::Struct(s) => {
            let (token, ident) = (&s.struct_token, &s.ident);
            ("a struct", quote!(#token #ident), "; to write a workflow by hand, implement `errand::Workflow` for it")
        }
        Item::Enum(e) => ("an enum", e.enum_token.into_token_stream(), ""),
        Item::Impl(i) => ("an impl block", i.impl_token.into_token_stream(), ""),
        Item::Trait(t) => ("a trait", t.trait_token.into_token_stream(), ""),
        other => ("this item", other.into_token_stream(), ""),
    };
    ctxt.error_spanned_by(
        head,
        format!("`#[errand::workflow]` goes on an inline module of step functions, not on {what}{hint}"),
    );
}

/// The steps must be in the module's body, where the macro can see them.
fn check_inline(ctxt: &mut Ctxt, module: &ItemMod) {
    let name = &module.ident;
    ctxt.error_spanned_by(
        module,
        format!(
            "`#[errand::workflow]` needs the module's steps inline, to check the graph: \
             write `mod {name} {{ ... }}`, not `mod {name};`"
        ),
    );
}

/// A workflow has at least one step.
fn check_has_steps(ctxt: &mut Ctxt, module: &ItemMod, items: &[Item]) {
    let name = module.ident.unraw_string();
    let unmarked: Vec<String> = items
        .iter()
        .filter_map(|item| match item {
            Item::Fn(f) if f.sig.asyncness.is_some() => Some(f.sig.ident.unraw_string()),
            _ => None,
        })
        .collect();
    let hint = match unmarked.first() {
        Some(first) => format!(" (e.g. `#[dag_step] async fn {first}`)"),
        None => String::new(),
    };
    ctxt.error_spanned_by(
        &module.ident,
        format!(
            "workflow `{name}` has no steps: mark its `async fn`s with `#[dag_step]` (a graph ordered by `after`) \
             or `#[step]` (a pipeline in the order written){hint}"
        ),
    );
}

/// A module is either a graph (`#[dag_step]`) or a pipeline (`#[step]`).
fn check_one_kind(ctxt: &mut Ctxt, found: &[Found]) {
    let first = found[0].kind;
    if let Some(other) = found.iter().find(|f| f.kind != first) {
        ctxt.error_spanned_by(
            &other.marker,
            format!(
                "a workflow module uses either `#[dag_step]` (a graph ordered by `after`) or `#[step]` (a pipeline \
                 in the order written), not both: this module's first step is a `{}`",
                first.marker()
            ),
        );
    }
}

/// Two steps cannot share a name: `after` and the run's status name them.
fn check_unique_names(ctxt: &mut Ctxt, steps: &[Step<'_>]) {
    for (index, step) in steps.iter().enumerate() {
        let name = step.name();
        if steps[..index].iter().any(|s| s.name() == name) {
            ctxt.error_spanned_by(
                &step.func.sig.ident,
                format!("step `{name}` is defined more than once: each step of a workflow needs its own name"),
            );
        }
    }
}

/// A workflow has at most `u16::MAX` steps (steps are numbered with `u16`).
fn check_step_count(ctxt: &mut Ctxt, module: &ItemMod, steps: &[Step<'_>]) {
    if steps.len() > usize::from(u16::MAX) {
        ctxt.error_spanned_by(&module.ident, format!("a workflow has at most {} steps", u16::MAX));
    }
}

/// Every name in `after` is a step of the module.
fn resolve_after(ctxt: &mut Ctxt, steps: &mut [Step<'_>], items: &[Item]) {
    let names: Vec<String> = steps.iter().map(Step::name).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    for step in steps.iter_mut() {
        let Some(after) = &step.attrs.after else { continue };
        step.after_names = after.steps.clone();
        for name in &after.steps {
            let text = name.unraw_string();
            if let Some(index) = names.iter().position(|n| *n == text) {
                step.after.push(index);
                continue;
            }
            let is_fn = items.iter().any(|item| matches!(item, Item::Fn(f) if f.sig.ident == text));
            let message = if is_fn {
                format!("`{text}` is not a step: mark it `#[dag_step]` to run it as one")
            } else {
                let hint = nearest(&text, &name_refs).map(|n| format!("did you mean `{n}`? ")).unwrap_or_default();
                format!("no step named `{text}` in this workflow: {hint}the steps are {}", list(&name_refs, "and"))
            };
            ctxt.error_spanned_by(name, message);
        }
    }
}

/// The graph has no cycle: a step in one would wait for itself. Each cycle
/// is reported once, on the `after` name that closes it, as
/// `a → b → c → a` (each step runs after the one before it).
fn check_acyclic(ctxt: &mut Ctxt, steps: &[Step<'_>]) {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    // Edges from a step to the steps it runs after; the DFS walks them
    // backwards in time, and a path back to an open step is a cycle.
    fn visit(
        ctxt: &mut Ctxt,
        steps: &[Step<'_>],
        node: usize,
        marks: &mut [Mark],
        path: &mut Vec<usize>,
        reported: &mut Vec<Vec<usize>>,
    ) {
        marks[node] = Mark::Open;
        path.push(node);
        for (position, &dep) in steps[node].after.iter().enumerate() {
            match marks[dep] {
                Mark::New => visit(ctxt, steps, dep, marks, path, reported),
                Mark::Open => {
                    // path: dep … node, and node runs after dep: in time
                    // order the cycle is node → … → dep → node reversed.
                    let start = path.iter().position(|n| *n == dep).unwrap_or(0);
                    let mut cycle: Vec<usize> = path[start..].iter().rev().copied().collect();
                    let mut key = cycle.clone();
                    key.sort_unstable();
                    if reported.contains(&key) {
                        continue;
                    }
                    reported.push(key);
                    // Start from the step declared first, for a stable message.
                    let first = cycle.iter().enumerate().min_by_key(|(_, n)| **n).map_or(0, |(i, _)| i);
                    cycle.rotate_left(first);
                    let mut names: Vec<String> = cycle.iter().map(|n| steps[*n].name()).collect();
                    names.push(steps[cycle[0]].name());
                    let message = if cycle.len() == 1 {
                        format!("step `{}` cannot run after itself", names[0])
                    } else {
                        format!("these steps form a cycle, so none of them could ever start: {}", names.join(" → "))
                    };
                    match steps[node].after_names.get(position) {
                        Some(name) => ctxt.error_spanned_by(name, message),
                        None => ctxt.error_spanned_by(&steps[node].func.sig.ident, message),
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks[node] = Mark::Done;
    }
    let mut marks = vec![Mark::New; steps.len()];
    let mut reported = Vec::new();
    for node in 0..steps.len() {
        if marks[node] == Mark::New {
            visit(ctxt, steps, node, &mut marks, &mut Vec::new(), &mut reported);
        }
    }
}

/// In a graph, an entry step takes the workflow's input (one stored
/// argument, or none), and every other step takes one stored argument per
/// step in its `after`, in that order.
fn check_dag_inputs(ctxt: &mut Ctxt, steps: &[Step<'_>]) {
    for step in steps {
        let stored: Vec<&Param<'_>> = step.stored().collect();
        if step.is_entry() {
            check_entry_inputs(ctxt, step, &stored);
            continue;
        }
        if stored.len() == step.after.len() {
            continue;
        }
        let name = step.name();
        let deps: Vec<String> = step.after.iter().map(|d| steps[*d].name()).collect();
        let dep_refs: Vec<&str> = deps.iter().map(String::as_str).collect();
        let runs_after = match dep_refs.as_slice() {
            [one] => format!("`{one}`"),
            all => format!("{} steps ({})", all.len(), list(all, "and")),
        };
        let takes = match stored.len() {
            0 => "no input".to_owned(),
            1 => "1 input".to_owned(),
            n => format!("{n} inputs"),
        };
        let message = format!(
            "`{name}` runs after {runs_after} but takes {takes}: a step takes one argument per step in its \
             `after`, the outputs of those steps in that order"
        );
        if let Some(extra) = stored.get(step.after.len()) {
            ctxt.error_spanned_by(extra.ty, message);
        } else if let Some(missing) = step.after_names.get(stored.len()) {
            ctxt.error_spanned_by(missing, message);
        } else {
            ctxt.error_spanned_by(&step.func.sig.ident, message);
        }
    }
}

/// In a pipeline, the first step takes the workflow's input and every other
/// step the previous step's output: one stored argument, or none to ignore
/// it.
fn check_pipeline_inputs(ctxt: &mut Ctxt, steps: &[Step<'_>]) {
    for (index, step) in steps.iter().enumerate() {
        let stored: Vec<&Param<'_>> = step.stored().collect();
        if index == 0 {
            check_entry_inputs(ctxt, step, &stored);
        } else if let Some(extra) = stored.get(1) {
            ctxt.error_spanned_by(
                extra.ty,
                format!(
                    "`{}` takes the output of `{}`, the step before it in the pipeline: it has one input (or none \
                     to ignore it); to pass several values, return a tuple or a struct from `{}`",
                    step.name(),
                    steps[index - 1].name(),
                    steps[index - 1].name()
                ),
            );
        }
    }
}

/// An entry step takes the workflow's input: one value, or nothing.
fn check_entry_inputs(ctxt: &mut Ctxt, step: &Step<'_>, stored: &[&Param<'_>]) {
    if let Some(extra) = stored.get(1) {
        ctxt.error_spanned_by(
            extra.ty,
            format!(
                "`{}` is an entry step: it takes the workflow's input, one value (or none); \
                 to start a run with several values, take them as a tuple or a struct",
                step.name()
            ),
        );
    }
}

/// `__errand_value`, spanned on the user's type `ty`, so that rustc's
/// "mismatched types" points at the argument.
fn value_at(ty: &Type) -> TokenStream {
    quote_spanned!(ty.span()=> __errand_value)
}

/// The visibility of an item generated inside the module that must be
/// reachable where the module is: the module's own visibility, seen from
/// inside it.
fn outer_vis(vis: &Visibility) -> TokenStream {
    match vis {
        Visibility::Public(token) => quote!(#token),
        Visibility::Inherited => quote!(pub(super)),
        Visibility::Restricted(restricted) => {
            let path = &restricted.path;
            let first = path.segments.first().map(|s| s.ident.to_string());
            match first.as_deref() {
                Some("crate") => quote!(#vis),
                Some("self") => {
                    let rest = path.segments.iter().skip(1);
                    quote!(pub(in super #(:: #rest)*))
                }
                _ => quote!(pub(in super:: #path)),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Codegen.

impl WorkflowMod<'_> {
    fn generate(&self) -> TokenStream {
        let input_struct = self.input_struct();
        let inherent = self.inherent_impl();
        let workflow_impl = self.workflow_impl();
        quote! {
            #input_struct
            #inherent
            #workflow_impl
        }
    }

    fn module_name(&self) -> String {
        self.module.ident.unraw_string()
    }

    /// The name runs and step tasks are stored under.
    fn name(&self) -> LitStr {
        match &self.attrs.name {
            Some(lit) => lit.clone(),
            None => LitStr::new(&self.module_name(), self.module.ident.span()),
        }
    }

    /// The input's type: the stored argument of the first entry step that
    /// has one.
    fn input(&self) -> Option<&Type> {
        self.steps.iter().filter(|s| s.is_entry()).find_map(|s| s.stored().next().map(|p| p.ty))
    }

    /// The steps nothing runs after, in declaration order: their outputs
    /// are the run's.
    fn sinks(&self) -> Vec<&Step<'_>> {
        (0..self.steps.len())
            .filter(|i| !self.steps.iter().any(|s| s.after.contains(i)))
            .map(|i| &self.steps[i])
            .collect()
    }

    /// `pub struct Onboarding { pub input: u64 }`, or a unit struct.
    fn input_struct(&self) -> TokenStream {
        let vis = outer_vis(&self.module.vis);
        let ident = &self.ident;
        let doc = format!(
            " The `{}` workflow, generated by `#[errand::workflow]`: the input of one run.\n\n \
             Start a run with `backend.start({ident}::new(...))`; run its steps with `{ident}::worker(&backend)`.",
            self.module_name()
        );
        match self.input() {
            Some(ty) => {
                let field = quote_spanned!(ty.span()=> #vis input: #ty);
                quote! {
                    #[doc = #doc]
                    #[derive(::core::fmt::Debug, ::core::clone::Clone)]
                    #vis struct #ident {
                        #[doc = " The run's input, which the entry steps take."]
                        #field,
                    }
                }
            }
            None => quote! {
                #[doc = #doc]
                #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::marker::Copy, ::core::default::Default)]
                #vis struct #ident;
            },
        }
    }

    /// `Onboarding::new(input)` and `Onboarding::worker(&backend)`.
    fn inherent_impl(&self) -> TokenStream {
        let krate = &self.krate;
        let vis = outer_vis(&self.module.vis);
        let ident = &self.ident;
        let name = self.module_name();
        let new = match self.input() {
            Some(ty) => quote! {
                #[doc = " A run of the workflow on `input`."]
                #[must_use]
                #vis fn new(input: #ty) -> Self {
                    Self { input }
                }
            },
            None => quote! {
                #[doc = " A run of the workflow (it takes no input)."]
                #[must_use]
                #vis fn new() -> Self {
                    Self
                }
            },
        };
        let worker_doc = format!(
            " A worker for the steps of `{name}` runs on `backend`: each step runs as its own task, with the \
             retries, backoff and timeout of its attribute.\n\n Give it the data the steps need with `.data(...)` \
             and register it with a `Monitor`."
        );
        quote! {
            impl #ident {
                #new

                #[doc = #worker_doc]
                #vis fn worker<B: #krate::Backend>(
                    backend: &B,
                ) -> #krate::WorkerBuilder<#krate::workflow::StepTask<Self, <B as #krate::Backend>::Codec>, B> {
                    #krate::WorkerBuilder::new(::core::clone::Clone::clone(backend))
                }
            }
        }
    }

    /// `impl Workflow for Onboarding` and the type assertions, inside
    /// `const _: () = { ... };`.
    fn workflow_impl(&self) -> TokenStream {
        let krate = &self.krate;
        let ident = &self.ident;
        let name = self.name();
        let queue = self.attrs.queue.as_ref().map(|q| quote!(const QUEUE: &'static str = #q;));
        let input = match self.input() {
            Some(ty) => quote_spanned!(ty.span()=> type Input = #ty;),
            None => quote!(
                type Input = ();
            ),
        };
        let into_input = match self.input() {
            Some(_) => quote!(self.input),
            None => quote!(()),
        };
        let output = self.output_type();
        // Spanned on a sink's return type, where an error about it belongs.
        let output_span = self.sinks().first().map_or_else(Span::call_site, |s| sig::return_type(s.func).1);
        let output = quote_spanned!(output_span=> type Output = #output;);
        let steps = self.steps_fn();
        let options = self.step_options_fn();
        let requirements = self.requirements_fn();
        let run_step = self.run_step_fn();
        let decode_output = self.decode_output_fn();
        let assertions = self.type_assertions();
        quote! {
            #[doc(hidden)]
            #[allow(non_upper_case_globals, non_snake_case, unused_qualifications, clippy::all)]
            const _: () = {
                #assertions

                fn __errand_send<F: ::core::marker::Send>(future: F) -> F {
                    future
                }

                #[automatically_derived]
                impl #krate::Workflow for #ident {
                    const NAME: &'static str = #name;
                    #queue
                    #input
                    #output

                    #steps

                    fn into_input(self) -> <Self as #krate::Workflow>::Input {
                        #into_input
                    }

                    #options
                    #requirements
                    #run_step
                    #decode_output
                }
            };
        }
    }

    /// The sink's output type, or a tuple of the sinks' in declaration order.
    fn output_type(&self) -> TokenStream {
        let krate = &self.krate;
        let outputs: Vec<TokenStream> = self.sinks().iter().map(|s| sig::output_type(krate, s.func)).collect();
        match outputs.as_slice() {
            [one] => one.clone(),
            many => quote!((#(#many,)*)),
        }
    }

    fn steps_fn(&self) -> TokenStream {
        let krate = &self.krate;
        let specs = self.steps.iter().enumerate().map(|(index, step)| {
            let index = u16::try_from(index).unwrap_or(u16::MAX);
            let name = LitStr::new(&step.name(), step.func.sig.ident.span());
            let after = step.after.iter().map(|a| u16::try_from(*a).unwrap_or(u16::MAX));
            quote! {
                #krate::workflow::StepSpec {
                    name: #krate::__private::String::from(#name),
                    after: ::std::vec![#(#after),*],
                    max_attempts: <Self as #krate::Workflow>::step_options(#index).retries.saturating_add(1),
                    priority: <Self as #krate::Workflow>::step_options(#index).priority,
                }
            }
        });
        quote! {
            fn steps() -> ::std::vec::Vec<#krate::workflow::StepSpec> {
                ::std::vec![#(#specs),*]
            }
        }
    }

    fn step_options_fn(&self) -> TokenStream {
        let krate = &self.krate;
        let arms = self.steps.iter().enumerate().filter_map(|(index, step)| {
            let index = u16::try_from(index).unwrap_or(u16::MAX);
            let options = step.attrs.job_options(krate)?;
            Some(quote!(#index => #options,))
        });
        quote! {
            fn step_options(step: u16) -> #krate::JobOptions {
                match step {
                    #(#arms)*
                    _ => #krate::JobOptions::DEFAULT,
                }
            }
        }
    }

    fn requirements_fn(&self) -> Option<TokenStream> {
        sig::requirements_fn(&self.krate, self.steps.iter().flat_map(|s| &s.params))
    }

    fn run_step_fn(&self) -> TokenStream {
        let krate = &self.krate;
        let workflow = self.name().value();
        let cx = Ident::new("__errand_cx", Span::call_site());
        let inputs = Ident::new("__errand_inputs", Span::call_site());
        let arms = self.steps.iter().enumerate().map(|(index, step)| {
            let index = u16::try_from(index).unwrap_or(u16::MAX);
            let name = step.name();
            let func = &step.func.sig.ident;
            let decodes = step.stored().enumerate().map(|(position, param)| {
                let (local, ty) = (&param.ident, param.ty);
                let what = if step.is_entry() {
                    format!("the input of step `{name}` of workflow `{workflow}`")
                } else {
                    format!("input {position} of step `{name}` of workflow `{workflow}`")
                };
                let decode = quote_spanned! {ty.span()=>
                    <__C as #krate::Codec>::decode::<#ty>(
                        #inputs.get(#position).map_or(&[][..], |bytes| &bytes.0[..]),
                        #what,
                    )
                };
                quote! {
                    let #local: #ty = match #decode {
                        #krate::__private::Result::Ok(value) => value,
                        #krate::__private::Result::Err(error) => {
                            return #krate::__private::Result::Err(#krate::JobError::abort(error));
                        }
                    };
                }
            });
            let injections = sig::injections(krate, &step.params, &cx);
            let args = step.params.iter().map(|p| &p.ident);
            let call = quote_spanned!(func.span()=> __errand_send(#func(#(#args),*)).await);
            let into_result = sig::into_job_result(krate, step.func, &call);
            let what = format!("the output of step `{name}` of workflow `{workflow}`");
            // Spanned on the return type, so that one that is not a job
            // return type is reported there only.
            let (_, ret_span) = sig::return_type(step.func);
            let encode = quote_spanned! {ret_span=>
                let __errand_output = match #into_result {
                    #krate::__private::Result::Ok(output) => output,
                    #krate::__private::Result::Err(error) => return #krate::__private::Result::Err(error),
                };
                <__C as #krate::Codec>::encode(&__errand_output, #what).map_err(#krate::JobError::abort)
            };
            quote! {
                #index => {
                    #(#decodes)*
                    #injections
                    #encode
                }
            }
        });
        let unknown = format!("workflow `{workflow}` has no step {{}}");
        quote! {
            fn run_step<__C: #krate::Codec>(
                __errand_step: u16,
                #inputs: ::std::vec::Vec<#krate::workflow::Bytes>,
                #cx: #krate::TaskCx,
            ) -> impl #krate::__private::Future<
                Output = #krate::__private::Result<::std::vec::Vec<u8>, #krate::JobError>,
            > + ::core::marker::Send {
                async move {
                    let _ = (&#inputs, &#cx);
                    match __errand_step {
                        #(#arms)*
                        _ => #krate::__private::Result::Err(
                            #krate::JobError::abort(#krate::__private::format!(#unknown, __errand_step)),
                        ),
                    }
                }
            }
        }
    }

    fn decode_output_fn(&self) -> TokenStream {
        let krate = &self.krate;
        let workflow = self.name().value();
        let sinks = self.sinks();
        let decodes: Vec<TokenStream> = sinks
            .iter()
            .map(|sink| {
                let ty = sig::output_type(krate, sink.func);
                let (_, ret_span) = sig::return_type(sink.func);
                let what = format!("the output of step `{}` of workflow `{workflow}`", sink.name());
                quote_spanned! {ret_span=>
                    match <__C as #krate::Codec>::decode::<#ty>(
                        &__errand_sinks.next().unwrap_or_default(),
                        #what,
                    ) {
                        #krate::__private::Result::Ok(value) => value,
                        #krate::__private::Result::Err(error) => return #krate::__private::Result::Err(error),
                    }
                }
            })
            .collect();
        let value = match decodes.as_slice() {
            [one] => one.clone(),
            many => quote!((#(#many,)*)),
        };
        let output = self.output_type();
        quote! {
            fn decode_output<__C: #krate::Codec>(
                sinks: ::std::vec::Vec<::std::vec::Vec<u8>>,
            ) -> #krate::__private::Result<#output, #krate::CodecError> {
                let mut __errand_sinks = sinks.into_iter();
                #krate::__private::Result::Ok(#value)
            }
        }
    }

    /// Functions that rustc type-checks with the user's spans: each stored
    /// argument of a step takes the output of the step it is bound to, and
    /// every entry step takes the workflow's input.
    fn type_assertions(&self) -> TokenStream {
        let krate = &self.krate;
        let mut out = TokenStream::new();
        for (index, step) in self.steps.iter().enumerate() {
            for (position, (param, dep)) in step.stored().zip(&step.after).enumerate() {
                let ty = param.ty;
                let dep_output = sig::output_type(krate, self.steps[*dep].func);
                let check = format_ident!("__errand_step_{}_input_{}", index, position);
                let value = value_at(ty);
                out.extend(quote! {
                    #[allow(dead_code)]
                    fn #check(__errand_value: #dep_output) {
                        let _: #ty = #value;
                    }
                });
            }
        }
        if let Some(input) = self.input() {
            let entries = self.steps.iter().enumerate().filter(|(_, s)| s.is_entry());
            for (index, step) in entries {
                let Some(param) = step.stored().next() else { continue };
                let ty = param.ty;
                if std::ptr::eq(ty, input) {
                    continue;
                }
                let check = format_ident!("__errand_step_{}_takes_the_input", index);
                let value = value_at(ty);
                out.extend(quote! {
                    #[allow(dead_code)]
                    fn #check(__errand_value: #input) {
                        let _: #ty = #value;
                    }
                });
            }
        }
        out
    }
}
