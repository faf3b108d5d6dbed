//! Parsing of the arguments of `#[errand::job(...)]`, `#[errand::workflow(...)]`,
//! `#[dag_step(...)]` and `#[step(...)]` into [`Attrs`]. The four share one
//! grammar; each accepts its own set of keys ([`AttrKind`]), and a key that
//! belongs to another of them gets a hint saying where it goes.
//!
//! Syntax errors (a missing `=`, a stray token) stop parsing; every other
//! mistake (unknown or repeated key, malformed value) is recorded in the
//! [`Ctxt`] and parsing goes on, so the user sees them all at once.

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Expr, ExprLit, ExprUnary, Ident, Lit, LitStr, Token, UnOp};

use crate::case::{list, nearest};
use crate::ctxt::Ctxt;
use crate::duration::{self, BACKOFF_FORM, BackoffSpec, DURATION_FORM, duration_tokens};

mod kw {
    syn::custom_keyword!(name);
    syn::custom_keyword!(queue);
    syn::custom_keyword!(retries);
    syn::custom_keyword!(backoff);
    syn::custom_keyword!(timeout);
    syn::custom_keyword!(priority);
    syn::custom_keyword!(unique);
    syn::custom_keyword!(unique_for);
    syn::custom_keyword!(cron);
    syn::custom_keyword!(timezone);
    syn::custom_keyword!(missed);
    syn::custom_keyword!(after);
}

/// Which attribute is being parsed: each accepts its own keys.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttrKind {
    /// `#[errand::job(...)]`.
    Job,
    /// `#[errand::workflow(...)]` on the module.
    Workflow,
    /// `#[dag_step(...)]` on a step of a graph.
    DagStep,
    /// `#[step(...)]` on a step of a pipeline.
    Step,
}

impl AttrKind {
    /// Every key the attribute accepts, in the order the docs list them.
    pub(crate) fn keys(self) -> &'static [&'static str] {
        match self {
            AttrKind::Job => &[
                "name",
                "queue",
                "retries",
                "backoff",
                "timeout",
                "priority",
                "unique",
                "unique_for",
                "cron",
                "timezone",
                "missed",
                "crate",
            ],
            AttrKind::Workflow => &["name", "queue", "crate"],
            AttrKind::DagStep => &["after", "retries", "backoff", "timeout", "priority"],
            AttrKind::Step => &["retries", "backoff", "timeout", "priority"],
        }
    }

    /// The attribute as a user writes it, for messages.
    pub(crate) fn display(self) -> &'static str {
        match self {
            AttrKind::Job => "#[errand::job]",
            AttrKind::Workflow => "#[errand::workflow]",
            AttrKind::DagStep => "#[dag_step]",
            AttrKind::Step => "#[step]",
        }
    }

    fn is_step(self) -> bool {
        matches!(self, AttrKind::DagStep | AttrKind::Step)
    }
}

/// A recognised key, with its token so errors can point at it.
enum Key {
    Name(kw::name),
    Queue(kw::queue),
    Retries(kw::retries),
    Backoff(kw::backoff),
    Timeout(kw::timeout),
    Priority(kw::priority),
    Unique(kw::unique),
    UniqueFor(kw::unique_for),
    Cron(kw::cron),
    Timezone(kw::timezone),
    Missed(kw::missed),
    After(kw::after),
    Crate(Token![crate]),
}

impl Key {
    fn as_str(&self) -> &'static str {
        match self {
            Key::Name(_) => "name",
            Key::Queue(_) => "queue",
            Key::Retries(_) => "retries",
            Key::Backoff(_) => "backoff",
            Key::Timeout(_) => "timeout",
            Key::Priority(_) => "priority",
            Key::Unique(_) => "unique",
            Key::UniqueFor(_) => "unique_for",
            Key::Cron(_) => "cron",
            Key::Timezone(_) => "timezone",
            Key::Missed(_) => "missed",
            Key::After(_) => "after",
            Key::Crate(_) => "crate",
        }
    }

    fn span(&self) -> Span {
        match self {
            Key::Name(k) => k.span,
            Key::Queue(k) => k.span,
            Key::Retries(k) => k.span,
            Key::Backoff(k) => k.span,
            Key::Timeout(k) => k.span,
            Key::Priority(k) => k.span,
            Key::Unique(k) => k.span,
            Key::UniqueFor(k) => k.span,
            Key::Cron(k) => k.span,
            Key::Timezone(k) => k.span,
            Key::Missed(k) => k.span,
            Key::After(k) => k.span,
            Key::Crate(k) => k.span,
        }
    }

    /// An example of the key with a well-formed value, for hints.
    fn example(&self, kind: AttrKind) -> &'static str {
        match self {
            Key::Name(_) if kind == AttrKind::Workflow => "name = \"onboarding\"",
            Key::Queue(_) if kind == AttrKind::Workflow => "queue = \"onboarding\"",
            Key::Name(_) => "name = \"send_email\"",
            Key::Queue(_) => "queue = \"emails\"",
            Key::Retries(_) => "retries = 5",
            Key::Backoff(_) => "backoff = \"exponential(100ms, max = 1m)\"",
            Key::Timeout(_) => "timeout = \"30s\"",
            Key::Priority(_) => "priority = 5",
            Key::Unique(_) => "unique = \"args\"",
            Key::UniqueFor(_) => "unique_for = \"1h\"",
            Key::Cron(_) => "cron = \"0 */5 * * * *\"",
            Key::Timezone(_) => "timezone = \"Europe/Paris\"",
            Key::Missed(_) => "missed = \"once\"",
            Key::After(_) => "after = fetch_user",
            Key::Crate(_) => "crate = \"my_app::errand\"",
        }
    }
}

/// One `key = value` (or a bare `key`) as written.
struct RawArg {
    /// A recognised key, or the identifier that is not one.
    key: Result<Key, Ident>,
    value: Option<Expr>,
}

impl RawArg {
    fn parse(input: ParseStream<'_>, kind: AttrKind) -> syn::Result<Self> {
        let lookahead = input.lookahead1();
        let key = if lookahead.peek(kw::name) {
            Ok(Key::Name(input.parse()?))
        } else if lookahead.peek(kw::queue) {
            Ok(Key::Queue(input.parse()?))
        } else if lookahead.peek(kw::retries) {
            Ok(Key::Retries(input.parse()?))
        } else if lookahead.peek(kw::backoff) {
            Ok(Key::Backoff(input.parse()?))
        } else if lookahead.peek(kw::timeout) {
            Ok(Key::Timeout(input.parse()?))
        } else if lookahead.peek(kw::priority) {
            Ok(Key::Priority(input.parse()?))
        } else if lookahead.peek(kw::unique) {
            Ok(Key::Unique(input.parse()?))
        } else if lookahead.peek(kw::unique_for) {
            Ok(Key::UniqueFor(input.parse()?))
        } else if lookahead.peek(kw::cron) {
            Ok(Key::Cron(input.parse()?))
        } else if lookahead.peek(kw::timezone) {
            Ok(Key::Timezone(input.parse()?))
        } else if lookahead.peek(kw::missed) {
            Ok(Key::Missed(input.parse()?))
        } else if lookahead.peek(kw::after) {
            Ok(Key::After(input.parse()?))
        } else if lookahead.peek(Token![crate]) {
            Ok(Key::Crate(input.parse()?))
        } else if input.peek(Ident::peek_any) {
            Err(input.call(Ident::parse_any)?)
        } else {
            return Err(syn::Error::new(
                input.span(),
                format!("expected `key = value`, where the key is one of {}", list(kind.keys(), "or")),
            ));
        };
        let value = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            Some(input.parse()?)
        } else {
            None
        };
        Ok(RawArg { key, value })
    }
}

/// The parsed and validated arguments of one attribute. A key with an
/// invalid value, or that the attribute does not accept, is `None` here; the
/// error is in the [`Ctxt`].
#[derive(Default)]
pub(crate) struct Attrs {
    pub(crate) name: Option<LitStr>,
    pub(crate) queue: Option<LitStr>,
    pub(crate) retries: Option<u32>,
    pub(crate) backoff: Option<BackoffSpec>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) priority: Option<i16>,
    pub(crate) unique: Option<Unique>,
    pub(crate) unique_for: Option<Duration>,
    pub(crate) krate: Option<syn::Path>,
    /// `after = a` or `after = [a, b]`: the steps' names as written.
    pub(crate) after: Option<After>,
    /// `cron = "…"`, checked.
    pub(crate) cron: Option<LitStr>,
    /// `timezone = "…"`, checked.
    pub(crate) timezone: Option<LitStr>,
    /// `missed = "…"`, checked.
    pub(crate) missed: Option<LitStr>,
    /// Where `timezone` or `missed` was written, for "needs `cron`" errors.
    pub(crate) schedule_keys: Vec<(Span, &'static str)>,
    /// Whether `cron` was written (valid or not).
    pub(crate) cron_written: bool,
}

/// The `after = ...` of a `#[dag_step]`.
pub(crate) struct After {
    /// The names, in order.
    pub(crate) steps: Vec<Ident>,
}

impl Attrs {
    /// `JobOptions { retries: 5, .., ..JobOptions::DEFAULT }` with the
    /// options these keys set, or `None` if they set none.
    pub(crate) fn job_options(&self, krate: &syn::Path) -> Option<TokenStream> {
        let mut fields = Vec::new();
        if let Some(retries) = self.retries {
            fields.push(quote!(retries: #retries));
        }
        if let Some(backoff) = &self.backoff {
            let backoff = backoff.to_tokens(krate);
            fields.push(quote!(backoff: #backoff));
        }
        if let Some(timeout) = self.timeout {
            let timeout = duration_tokens(krate, timeout);
            fields.push(quote!(timeout: #krate::__private::Option::Some(#timeout)));
        }
        if let Some(priority) = self.priority {
            fields.push(quote!(priority: #priority));
        }
        if let Some(unique_for) = self.unique_for {
            let unique_for = duration_tokens(krate, unique_for);
            fields.push(quote!(unique_for: #krate::__private::Option::Some(#unique_for)));
        }
        if fields.is_empty() {
            return None;
        }
        Some(quote!(#krate::JobOptions { #(#fields,)* ..#krate::JobOptions::DEFAULT }))
    }
}

/// The `unique = "..."` policy.
pub(crate) enum Unique {
    /// `"args"`: dedupe on every stored argument.
    Args,
    /// `"welcome:{to}"`: a key built from some arguments.
    Template {
        /// The literal, for spans.
        lit: LitStr,
        /// The text split into literal parts and `{argument}`s.
        pieces: Vec<Piece>,
    },
}

/// A part of a unique-key template.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Piece {
    /// Literal text, with `{{`/`}}` already unescaped.
    Text(String),
    /// `{name}`: the value of an argument.
    Arg(String),
}

/// Parses the arguments of a `kind` attribute. Never fails: errors go to
/// `ctxt` and the keys that parsed are returned.
pub(crate) fn parse(ctxt: &mut Ctxt, args: TokenStream, kind: AttrKind) -> Attrs {
    let mut attrs = Attrs::default();
    let parser = |input: ParseStream<'_>| {
        let mut raw = Vec::new();
        while !input.is_empty() {
            raw.push(RawArg::parse(input, kind)?);
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(raw)
    };
    let raw = match parser.parse2(args) {
        Ok(raw) => raw,
        Err(error) => {
            ctxt.syn_error(error);
            return attrs;
        }
    };
    let mut seen: Vec<&'static str> = Vec::new();
    for arg in raw {
        let key = match arg.key {
            Ok(key) => key,
            Err(unknown) => {
                ctxt.error_spanned_by(&unknown, unknown_key_message(&unknown, kind));
                continue;
            }
        };
        if !kind.keys().contains(&key.as_str()) {
            ctxt.error_at(key.span(), misplaced_key_message(&key, kind));
            continue;
        }
        if seen.contains(&key.as_str()) {
            ctxt.error_at(key.span(), format!("`{}` specified more than once", key.as_str()));
            continue;
        }
        seen.push(key.as_str());
        let Some(value) = arg.value else {
            ctxt.error_at(key.span(), format!("`{}` needs a value: `{}`", key.as_str(), key.example(kind)));
            continue;
        };
        let _ = parse_value(ctxt, &mut attrs, &key, &value, kind);
    }
    attrs
}

/// Checks a cron expression as `errand-cron` parses it at run time.
fn check_cron(expression: &str) -> Result<(), String> {
    let trimmed = expression.trim();
    if !trimmed.starts_with('@') && trimmed.split_whitespace().count() == 5 {
        return Err(format!(
            "invalid cron expression `{trimmed}`: it has 5 fields, but errand's cron expressions start with seconds \
             (sec min hour day-of-month month day-of-week [year]): write `0 {trimmed}`"
        ));
    }
    <cron::Schedule as std::str::FromStr>::from_str(trimmed).map(|_| ()).map_err(|error| {
        format!(
            "invalid cron expression `{trimmed}`: {} (expected sec min hour day-of-month month day-of-week \
             [year], e.g. `0 0 6 * * Mon-Fri`)",
            cron_reason(&error.to_string())
        )
    })
}

/// Every timezone name, for "did you mean" hints.
fn timezone_names() -> Vec<&'static str> {
    chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect()
}

fn unknown_key_message(unknown: &Ident, kind: AttrKind) -> String {
    let keys = kind.keys();
    let text = unknown.unraw().to_string();
    let hint = match text.as_str() {
        "max_retries" | "retry" | "max_attempts" | "attempts" => Some("retries"),
        "schedule" => Some("cron"),
        "tz" | "time_zone" | "zone" => Some("timezone"),
        "catch_up" | "misfire" | "on_missed" => Some("missed"),
        "unique_key" | "dedupe" | "unique_by" => Some("unique"),
        "unique_window" | "unique_ttl" => Some("unique_for"),
        "job_name" | "rename" => Some("name"),
        "krate" | "errand" => Some("crate"),
        "depends_on" | "deps" | "needs" | "requires" | "before" => Some("after"),
        _ => nearest(&text, keys),
    };
    // A hint is only useful if it names a key this attribute takes.
    let hint = hint.filter(|k| keys.contains(k));
    let hint = hint.map(|k| format!("did you mean `{k}`? ")).unwrap_or_default();
    let extra = match text.as_str() {
        "delay" | "run_at" | "scheduled_at" => " (a delay is chosen when enqueueing: `Enqueue::new().delay(...)`)",
        "concurrency" => " (concurrency is set on the worker: `Job::worker(&backend).concurrency(n)`)",
        _ => "",
    };
    format!("unknown key `{text}`: {hint}valid keys are {}{extra}", list(keys, "and"))
}

/// A key that another of errand's attributes takes, written on `kind`: say
/// where it goes.
fn misplaced_key_message(key: &Key, kind: AttrKind) -> String {
    let name = key.as_str();
    let keys = list(kind.keys(), "and");
    match (key, kind) {
        (Key::After(_), AttrKind::Step) => "`after` does not apply to `#[step]`: the steps of a pipeline run in \
                                            the order written; to declare a graph, use `#[dag_step(after = ...)]` \
                                            on every step"
            .to_owned(),
        (Key::Retries(_) | Key::Backoff(_) | Key::Timeout(_) | Key::Priority(_), AttrKind::Workflow) => format!(
            "`{name}` is set per step, not on the workflow: `#[dag_step({example})]` or `#[step({example})]`; \
             valid keys here are {keys}",
            example = key.example(kind)
        ),
        (Key::Queue(_) | Key::Crate(_), _) if kind.is_step() => format!(
            "`{name}` is set on the workflow, not on a step: `#[errand::workflow({})]`; valid keys here are {keys}",
            key.example(AttrKind::Workflow)
        ),
        (Key::Name(_), _) if kind.is_step() => {
            format!("a step is named after its function: rename the function instead; valid keys here are {keys}")
        }
        (Key::After(_), _) => format!(
            "`after` orders the steps of a workflow: it goes on a `#[dag_step]`; valid keys of `{}` are {keys}",
            kind.display()
        ),
        _ => format!("`{name}` cannot be set on `{}`: valid keys are {keys}", kind.display()),
    }
}

fn parse_value(ctxt: &mut Ctxt, attrs: &mut Attrs, key: &Key, value: &Expr, kind: AttrKind) -> Option<()> {
    match key {
        Key::Name(_) => attrs.name = non_empty_str(ctxt, key, value, kind),
        Key::Queue(_) => attrs.queue = non_empty_str(ctxt, key, value, kind),
        Key::Retries(_) => {
            attrs.retries = int(ctxt, key, value, kind).and_then(|(n, lit)| match u32::try_from(n) {
                Ok(n) => Some(n),
                Err(_) if n < 0 => {
                    ctxt.error_spanned_by(value, "`retries` cannot be negative: use `retries = 0` to never retry");
                    None
                }
                Err(_) => {
                    ctxt.error_spanned_by(lit, format!("`retries` must fit in a u32 (at most {})", u32::MAX));
                    None
                }
            });
        }
        Key::Priority(_) => {
            attrs.priority = int(ctxt, key, value, kind).and_then(|(n, _)| match i16::try_from(n) {
                Ok(n) => Some(n),
                Err(_) => {
                    ctxt.error_spanned_by(
                        value,
                        format!(
                            "`priority` must fit in an i16 ({} to {}); higher runs first, 0 is the default",
                            i16::MIN,
                            i16::MAX
                        ),
                    );
                    None
                }
            });
        }
        Key::Timeout(_) => attrs.timeout = positive_duration(ctxt, key, value, kind),
        Key::UniqueFor(_) => attrs.unique_for = positive_duration(ctxt, key, value, kind),
        Key::Backoff(_) => {
            let lit = str_lit(ctxt, key, value, kind)?;
            match duration::parse_backoff(&lit.value()) {
                Ok(spec) => attrs.backoff = Some(spec),
                Err(reason) => ctxt.error_spanned_by(&lit, format!("invalid backoff: {reason}; {BACKOFF_FORM}")),
            }
        }
        Key::Unique(_) => attrs.unique = str_lit(ctxt, key, value, kind).and_then(|lit| unique(ctxt, lit)),
        Key::After(_) => attrs.after = after(ctxt, value),
        Key::Cron(_) => {
            attrs.cron_written = true;
            let lit = str_lit(ctxt, key, value, kind)?;
            match check_cron(&lit.value()) {
                Ok(()) => attrs.cron = Some(lit),
                Err(reason) => ctxt.error_spanned_by(&lit, reason),
            }
        }
        Key::Timezone(_) => {
            attrs.schedule_keys.push((key.span(), "timezone"));
            let lit = str_lit(ctxt, key, value, kind)?;
            let name = lit.value();
            match name.parse::<chrono_tz::Tz>() {
                Ok(_) => attrs.timezone = Some(lit),
                Err(_) => {
                    let hint =
                        nearest(&name, &timezone_names()).map(|n| format!("did you mean `{n}`? ")).unwrap_or_default();
                    ctxt.error_spanned_by(
                        &lit,
                        format!("unknown timezone `{name}`: {hint}expected an IANA name such as `Europe/Paris`, `America/New_York` or `UTC`"),
                    );
                }
            }
        }
        Key::Missed(_) => {
            attrs.schedule_keys.push((key.span(), "missed"));
            let lit = str_lit(ctxt, key, value, kind)?;
            match lit.value().as_str() {
                "skip" | "once" | "all" => attrs.missed = Some(lit),
                other => ctxt.error_spanned_by(
                    &lit,
                    format!(
                        "unknown `missed` policy `{other}`: expected \"skip\" (drop ticks missed while every worker \
                         was down), \"once\" (run the latest of them once; the default) or \"all\" (run each, at \
                         most 1000)"
                    ),
                ),
            }
        }
        Key::Crate(_) => {
            attrs.krate = match value {
                Expr::Path(path) if path.qself.is_none() => Some(path.path.clone()),
                _ => {
                    let lit = str_lit(ctxt, key, value, kind)?;
                    match lit.parse::<syn::Path>() {
                        Ok(path) => Some(path),
                        Err(_) => {
                            ctxt.error_spanned_by(
                                &lit,
                                format!(
                                    "`crate` expects the path errand is re-exported at, e.g. `{}`",
                                    key.example(kind)
                                ),
                            );
                            None
                        }
                    }
                }
            };
        }
    }
    Some(())
}

/// `after = fetch_user` or `after = [send_welcome, provision]`: step names,
/// checked against the module's steps later.
fn after(ctxt: &mut Ctxt, value: &Expr) -> Option<After> {
    const FORM: &str = "`after = fetch_user` or `after = [send_welcome, provision]`";
    let name = |ctxt: &mut Ctxt, expr: &Expr| -> Option<Ident> {
        match expr {
            Expr::Path(path) if path.qself.is_none() && path.attrs.is_empty() => match path.path.get_ident() {
                Some(ident) => Some(ident.clone()),
                None => {
                    ctxt.error_spanned_by(
                        expr,
                        "`after` names steps of this workflow module: write the function's name alone, without a path",
                    );
                    None
                }
            },
            Expr::Lit(ExprLit { lit: Lit::Str(lit), .. }) => {
                ctxt.error_spanned_by(
                    lit,
                    format!("`after` takes step names, not strings: write `{}` without quotes", lit.value()),
                );
                None
            }
            _ => {
                ctxt.error_spanned_by(expr, format!("`after` expects the name of a step: {FORM}"));
                None
            }
        }
    };
    let steps: Vec<Ident> = match value {
        Expr::Array(array) => {
            if array.elems.is_empty() {
                ctxt.error_spanned_by(
                    array,
                    "`after = []` names no step: leave `after` out to make this an entry step, which takes the \
                     workflow's input",
                );
                return None;
            }
            let names: Vec<Option<Ident>> = array.elems.iter().map(|e| name(ctxt, e)).collect();
            names.into_iter().collect::<Option<_>>()?
        }
        Expr::Tuple(tuple) => {
            ctxt.error_spanned_by(tuple, format!("list the steps in square brackets: {FORM}"));
            return None;
        }
        other => vec![name(ctxt, other)?],
    };
    for (i, step) in steps.iter().enumerate() {
        if steps[..i].contains(step) {
            ctxt.error_spanned_by(step, format!("`{step}` is listed more than once in `after`"));
            return None;
        }
    }
    Some(After { steps })
}

/// The value as a string literal, or an error showing the expected form.
fn str_lit(ctxt: &mut Ctxt, key: &Key, value: &Expr, kind: AttrKind) -> Option<LitStr> {
    if let Expr::Lit(ExprLit { lit: Lit::Str(lit), .. }) = value {
        return Some(lit.clone());
    }
    let quoted = match value {
        Expr::Lit(ExprLit { lit: Lit::Int(_) | Lit::Float(_), .. }) | Expr::Path(_) => {
            format!(": write it in quotes, `{} = \"{}\"`", key.as_str(), quote::ToTokens::to_token_stream(value))
        }
        _ => format!(", e.g. `{}`", key.example(kind)),
    };
    ctxt.error_spanned_by(value, format!("`{}` expects a string{quoted}", key.as_str()));
    None
}

fn non_empty_str(ctxt: &mut Ctxt, key: &Key, value: &Expr, kind: AttrKind) -> Option<LitStr> {
    let lit = str_lit(ctxt, key, value, kind)?;
    if lit.value().trim().is_empty() {
        ctxt.error_spanned_by(&lit, format!("`{}` must not be empty, e.g. `{}`", key.as_str(), key.example(kind)));
        return None;
    }
    Some(lit)
}

/// An integer literal, possibly negated, with the literal for spans.
fn int(ctxt: &mut Ctxt, key: &Key, value: &Expr, kind: AttrKind) -> Option<(i128, syn::LitInt)> {
    let (negative, inner) = match value {
        Expr::Unary(ExprUnary { op: UnOp::Neg(_), expr, .. }) => (true, &**expr),
        other => (false, other),
    };
    if let Expr::Lit(ExprLit { lit: Lit::Int(lit), .. }) = inner {
        return match lit.base10_parse::<i128>() {
            Ok(n) => Some((if negative { -n } else { n }, lit.clone())),
            Err(e) => {
                ctxt.syn_error(e);
                None
            }
        };
    }
    let hint = match inner {
        Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) if s.value().trim().parse::<i128>().is_ok() => {
            format!(": write it without quotes, `{} = {}`", key.as_str(), s.value().trim())
        }
        _ => format!(", e.g. `{}`", key.example(kind)),
    };
    ctxt.error_spanned_by(value, format!("`{}` expects an integer{hint}", key.as_str()));
    None
}

fn positive_duration(ctxt: &mut Ctxt, key: &Key, value: &Expr, kind: AttrKind) -> Option<Duration> {
    if let Expr::Lit(ExprLit { lit: Lit::Int(lit), .. }) = value
        && !lit.suffix().is_empty()
    {
        ctxt.error_spanned_by(value, format!("write the duration in quotes: `{} = \"{lit}\"`", key.as_str()));
        return None;
    }
    let lit = str_lit(ctxt, key, value, kind)?;
    match duration::parse_duration(&lit.value()) {
        Ok(d) if d.is_zero() => {
            ctxt.error_spanned_by(&lit, format!("`{}` must be longer than zero", key.as_str()));
            None
        }
        Ok(d) => Some(d),
        Err(reason) => {
            ctxt.error_spanned_by(&lit, format!("invalid duration {:?}: {reason}; {DURATION_FORM}", lit.value()));
            None
        }
    }
}

fn unique(ctxt: &mut Ctxt, lit: LitStr) -> Option<Unique> {
    let text = lit.value();
    if text == "args" {
        return Some(Unique::Args);
    }
    if text.is_empty() {
        ctxt.error_spanned_by(
            &lit,
            "`unique` must not be empty: use \"args\" to dedupe on every argument, or a key such as \"welcome:{to}\"",
        );
        return None;
    }
    match parse_template(&text) {
        Ok(pieces) => Some(Unique::Template { lit, pieces }),
        Err(reason) => {
            ctxt.error_spanned_by(
                &lit,
                format!("invalid unique key: {reason}; write arguments as `{{name}}` and literal braces as `{{{{` and `}}}}`"),
            );
            None
        }
    }
}

/// Splits `"welcome:{to}"` into text and argument pieces.
pub(crate) fn parse_template(text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                literal.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                literal.push('}');
            }
            '}' => return Err("unmatched `}`".to_owned()),
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => return Err(format!("unclosed `{{{name}`")),
                    }
                }
                let name = name.trim().to_owned();
                let is_ident = name.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
                    && name.chars().all(|c| c.is_alphanumeric() || c == '_');
                if !is_ident {
                    return Err(if name.is_empty() {
                        "`{}` needs an argument name, e.g. `{to}`".to_owned()
                    } else if name.contains(':') {
                        format!("format specs are not supported in `{{{name}}}`")
                    } else {
                        format!("`{{{name}}}` is not an argument name")
                    });
                }
                if !literal.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut literal)));
                }
                pieces.push(Piece::Arg(name));
            }
            c => literal.push(c),
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    Ok(pieces)
}

/// The `cron` crate's message without its copy of the expression and caret
/// line: the last line, which says what is wrong.
fn cron_reason(message: &str) -> &str {
    message.lines().rev().map(str::trim).find(|line| !line.is_empty()).unwrap_or(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn errors(tokens: TokenStream) -> Vec<String> {
        let mut ctxt = Ctxt::new();
        let _ = parse(&mut ctxt, tokens, AttrKind::Job);
        match ctxt.check() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn every_key_parses() {
        let mut ctxt = Ctxt::new();
        let attrs = parse(
            &mut ctxt,
            quote!(
                name = "n",
                queue = "q",
                retries = 5,
                backoff = "fixed(1s)",
                timeout = "30s",
                priority = -3,
                unique = "k:{a}",
                unique_for = "1h",
                crate = "my::errand"
            ),
            AttrKind::Job,
        );
        assert!(ctxt.is_empty());
        assert_eq!(attrs.name.map(|l| l.value()).as_deref(), Some("n"));
        assert_eq!(attrs.queue.map(|l| l.value()).as_deref(), Some("q"));
        assert_eq!(attrs.retries, Some(5));
        assert_eq!(attrs.timeout, Some(Duration::from_secs(30)));
        assert_eq!(attrs.priority, Some(-3));
        assert_eq!(attrs.unique_for, Some(Duration::from_secs(3600)));
        assert!(attrs.backoff.is_some());
        assert!(matches!(attrs.unique, Some(Unique::Template { .. })));
        assert!(attrs.krate.is_some());
    }

    #[test]
    fn all_mistakes_are_reported() {
        let errs = errors(quote!(retry = 5, queue = "a", queue = "b", priority = 40000, timeout = "5 sec", cron = "x"));
        assert_eq!(errs.len(), 5, "{errs:?}");
        assert!(errs[0].starts_with("unknown key `retry`: did you mean `retries`? valid keys are `name`"));
        assert_eq!(errs[1], "`queue` specified more than once");
        assert!(errs[2].starts_with("`priority` must fit in an i16"));
        assert!(errs[3].starts_with("invalid duration \"5 sec\": unknown unit `sec` (did you mean `s`?)"));
        assert!(errs[4].starts_with("invalid cron expression `x`"), "{}", errs[4]);
    }

    #[test]
    fn schedules_are_checked_at_compile_time() {
        let mut ctxt = Ctxt::new();
        let attrs = parse(
            &mut ctxt,
            quote!(cron = "0 0 6 * * Mon-Fri", timezone = "Europe/Paris", missed = "all"),
            AttrKind::Job,
        );
        assert!(ctxt.is_empty());
        assert!(attrs.cron.is_some() && attrs.timezone.is_some() && attrs.missed.is_some());
        let errs = errors(quote!(cron = "*/5 * * * *", timezone = "Europe/Pari", missed = "twice"));
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs[0].contains("5 fields") && errs[0].contains("`0 */5 * * * *`"), "{}", errs[0]);
        assert!(errs[1].starts_with("unknown timezone `Europe/Pari`: did you mean `Europe/Paris`?"), "{}", errs[1]);
        assert!(errs[2].starts_with("unknown `missed` policy `twice`"), "{}", errs[2]);
    }

    #[test]
    fn value_kinds_are_checked() {
        assert_eq!(
            errors(quote!(retries = "5")),
            ["`retries` expects an integer: write it without quotes, `retries = 5`"]
        );
        assert_eq!(errors(quote!(retries = -1)), ["`retries` cannot be negative: use `retries = 0` to never retry"]);
        assert_eq!(
            errors(quote!(queue = emails)),
            ["`queue` expects a string: write it in quotes, `queue = \"emails\"`"]
        );
        assert_eq!(errors(quote!(queue = "")), ["`queue` must not be empty, e.g. `queue = \"emails\"`"]);
        assert_eq!(errors(quote!(timeout = 30s)), ["write the duration in quotes: `timeout = \"30s\"`"]);
        assert_eq!(errors(quote!(timeout = "0s")), ["`timeout` must be longer than zero"]);
        assert_eq!(errors(quote!(retries)), ["`retries` needs a value: `retries = 5`"]);
        assert_eq!(errors(quote!(crate = errand_reexport::errand)), Vec::<String>::new());
    }

    fn errors_of(kind: AttrKind, tokens: TokenStream) -> Vec<String> {
        let mut ctxt = Ctxt::new();
        let _ = parse(&mut ctxt, tokens, kind);
        ctxt.check().err().map(|e| e.into_iter().map(|e| e.to_string()).collect()).unwrap_or_default()
    }

    #[test]
    fn each_attribute_takes_its_own_keys() {
        let mut ctxt = Ctxt::new();
        let attrs = parse(&mut ctxt, quote!(after = [a, b], retries = 2, priority = 1), AttrKind::DagStep);
        assert!(ctxt.is_empty());
        let after: Vec<String> =
            attrs.after.map(|a| a.steps.iter().map(ToString::to_string).collect()).unwrap_or_default();
        assert_eq!(after, ["a", "b"]);
        assert_eq!(attrs.retries, Some(2));
        assert!(errors_of(AttrKind::DagStep, quote!(after = a)).is_empty());
        assert!(errors_of(AttrKind::Workflow, quote!(name = "w", queue = "q", crate = "x::errand")).is_empty());
        assert!(errors_of(AttrKind::Job, quote!(after = a))[0].starts_with("`after` orders the steps of a workflow"));
        assert!(errors_of(AttrKind::Step, quote!(after = a))[0].starts_with("`after` does not apply to `#[step]`"));
        assert!(errors_of(AttrKind::Workflow, quote!(retries = 1))[0].starts_with("`retries` is set per step"));
        assert!(errors_of(AttrKind::DagStep, quote!(queue = "q"))[0].starts_with("`queue` is set on the workflow"));
        assert_eq!(
            errors_of(AttrKind::DagStep, quote!(needs = a)),
            [
                "unknown key `needs`: did you mean `after`? valid keys are `after`, `retries`, `backoff`, `timeout` and `priority`"
            ]
        );
    }

    #[test]
    fn after_values_are_checked() {
        assert_eq!(errors_of(AttrKind::DagStep, quote!(after = [a, a])), ["`a` is listed more than once in `after`"]);
        assert!(errors_of(AttrKind::DagStep, quote!(after = []))[0].starts_with("`after = []` names no step"));
        assert!(
            errors_of(AttrKind::DagStep, quote!(after = "a"))[0].starts_with("`after` takes step names, not strings")
        );
        assert!(
            errors_of(AttrKind::DagStep, quote!(after = (a, b)))[0].starts_with("list the steps in square brackets")
        );
        assert!(errors_of(AttrKind::DagStep, quote!(after = x::a))[0].contains("without a path"));
    }

    #[test]
    fn templates() {
        assert_eq!(
            parse_template("welcome:{to}:{{x}}"),
            Ok(vec![Piece::Text("welcome:".into()), Piece::Arg("to".into()), Piece::Text(":{x}".into())])
        );
        assert_eq!(parse_template("{a}{b}"), Ok(vec![Piece::Arg("a".into()), Piece::Arg("b".into())]));
        assert_eq!(parse_template("x{"), Err("unclosed `{`".to_owned()));
        assert_eq!(parse_template("x}"), Err("unmatched `}`".to_owned()));
        assert_eq!(parse_template("{}"), Err("`{}` needs an argument name, e.g. `{to}`".to_owned()));
        assert_eq!(parse_template("{to:?}"), Err("format specs are not supported in `{to:?}`".to_owned()));
        assert_eq!(parse_template("{1x}"), Err("`{1x}` is not an argument name".to_owned()));
    }
}
