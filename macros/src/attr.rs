//! Parsing of the `#[errand::job(...)]` arguments into [`JobAttrs`].
//!
//! Syntax errors (a missing `=`, a stray token) stop parsing; every other
//! mistake (unknown or repeated key, malformed value) is recorded in the
//! [`Ctxt`] and parsing goes on, so the user sees them all at once.

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, ExprUnary, Ident, Lit, LitStr, Token, UnOp};

use crate::case::{list, nearest};
use crate::ctxt::Ctxt;
use crate::duration::{self, BACKOFF_FORM, BackoffSpec, DURATION_FORM};

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
}

/// Every key `#[errand::job]` accepts, in the order the docs list them.
pub(crate) const KEYS: &[&str] =
    &["name", "queue", "retries", "backoff", "timeout", "priority", "unique", "unique_for", "cron", "crate"];

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
            Key::Crate(k) => k.span,
        }
    }

    /// An example of the key with a well-formed value, for hints.
    fn example(&self) -> &'static str {
        match self {
            Key::Name(_) => "name = \"send_email\"",
            Key::Queue(_) => "queue = \"emails\"",
            Key::Retries(_) => "retries = 5",
            Key::Backoff(_) => "backoff = \"exponential(100ms, max = 1m)\"",
            Key::Timeout(_) => "timeout = \"30s\"",
            Key::Priority(_) => "priority = 5",
            Key::Unique(_) => "unique = \"args\"",
            Key::UniqueFor(_) => "unique_for = \"1h\"",
            Key::Cron(_) => "cron = \"0 */5 * * * *\"",
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

impl Parse for RawArg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
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
        } else if lookahead.peek(Token![crate]) {
            Ok(Key::Crate(input.parse()?))
        } else if input.peek(Ident::peek_any) {
            Err(input.call(Ident::parse_any)?)
        } else {
            return Err(syn::Error::new(
                input.span(),
                format!("expected `key = value`, where the key is one of {}", list(KEYS, "or")),
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

/// The parsed and validated `#[errand::job(...)]` arguments. A key with an
/// invalid value is `None` here; the error is in the [`Ctxt`].
#[derive(Default)]
pub(crate) struct JobAttrs {
    pub(crate) name: Option<LitStr>,
    pub(crate) queue: Option<LitStr>,
    pub(crate) retries: Option<u32>,
    pub(crate) backoff: Option<BackoffSpec>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) priority: Option<i16>,
    pub(crate) unique: Option<Unique>,
    pub(crate) unique_for: Option<Duration>,
    pub(crate) krate: Option<syn::Path>,
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

/// Parses the attribute's arguments. Never fails: errors go to `ctxt` and the
/// keys that parsed are returned.
pub(crate) fn parse(ctxt: &mut Ctxt, args: TokenStream) -> JobAttrs {
    let mut attrs = JobAttrs::default();
    let raw = match Punctuated::<RawArg, Token![,]>::parse_terminated.parse2(args) {
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
                ctxt.error_spanned_by(&unknown, unknown_key_message(&unknown));
                continue;
            }
        };
        if seen.contains(&key.as_str()) {
            ctxt.error_at(key.span(), format!("`{}` specified more than once", key.as_str()));
            continue;
        }
        seen.push(key.as_str());
        let Some(value) = arg.value else {
            ctxt.error_at(key.span(), format!("`{}` needs a value: `{}`", key.as_str(), key.example()));
            continue;
        };
        let _ = parse_value(ctxt, &mut attrs, &key, &value);
    }
    attrs
}

fn unknown_key_message(unknown: &Ident) -> String {
    let text = unknown.unraw().to_string();
    let hint = match text.as_str() {
        "max_retries" | "retry" | "max_attempts" | "attempts" => Some("retries"),
        "schedule" => Some("cron"),
        "unique_key" | "dedupe" | "unique_by" => Some("unique"),
        "unique_window" | "unique_ttl" => Some("unique_for"),
        "job_name" | "rename" => Some("name"),
        "krate" | "errand" => Some("crate"),
        _ => nearest(&text, KEYS),
    };
    let hint = hint.map(|k| format!("did you mean `{k}`? ")).unwrap_or_default();
    let extra = match text.as_str() {
        "delay" | "run_at" | "scheduled_at" => " (a delay is chosen when enqueueing: `Enqueue::new().delay(...)`)",
        "concurrency" => " (concurrency is set on the worker: `Job::worker(&backend).concurrency(n)`)",
        _ => "",
    };
    format!("unknown key `{text}`: {hint}valid keys are {}{extra}", list(KEYS, "and"))
}

fn parse_value(ctxt: &mut Ctxt, attrs: &mut JobAttrs, key: &Key, value: &Expr) -> Option<()> {
    match key {
        Key::Name(_) => attrs.name = non_empty_str(ctxt, key, value),
        Key::Queue(_) => attrs.queue = non_empty_str(ctxt, key, value),
        Key::Retries(_) => {
            attrs.retries = int(ctxt, key, value).and_then(|(n, lit)| match u32::try_from(n) {
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
            attrs.priority = int(ctxt, key, value).and_then(|(n, _)| match i16::try_from(n) {
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
        Key::Timeout(_) => attrs.timeout = positive_duration(ctxt, key, value),
        Key::UniqueFor(_) => attrs.unique_for = positive_duration(ctxt, key, value),
        Key::Backoff(_) => {
            let lit = str_lit(ctxt, key, value)?;
            match duration::parse_backoff(&lit.value()) {
                Ok(spec) => attrs.backoff = Some(spec),
                Err(reason) => ctxt.error_spanned_by(&lit, format!("invalid backoff: {reason}; {BACKOFF_FORM}")),
            }
        }
        Key::Unique(_) => attrs.unique = str_lit(ctxt, key, value).and_then(|lit| unique(ctxt, lit)),
        Key::Cron(_) => ctxt.error_at(
            key.span(),
            "cron schedules are not supported in this version of errand: remove `cron` and enqueue \
             this job from a scheduler of your own",
        ),
        Key::Crate(_) => {
            attrs.krate = match value {
                Expr::Path(path) if path.qself.is_none() => Some(path.path.clone()),
                _ => {
                    let lit = str_lit(ctxt, key, value)?;
                    match lit.parse::<syn::Path>() {
                        Ok(path) => Some(path),
                        Err(_) => {
                            ctxt.error_spanned_by(
                                &lit,
                                format!("`crate` expects the path errand is re-exported at, e.g. `{}`", key.example()),
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

/// The value as a string literal, or an error showing the expected form.
fn str_lit(ctxt: &mut Ctxt, key: &Key, value: &Expr) -> Option<LitStr> {
    if let Expr::Lit(ExprLit { lit: Lit::Str(lit), .. }) = value {
        return Some(lit.clone());
    }
    let quoted = match value {
        Expr::Lit(ExprLit { lit: Lit::Int(_) | Lit::Float(_), .. }) | Expr::Path(_) => {
            format!(": write it in quotes, `{} = \"{}\"`", key.as_str(), quote::ToTokens::to_token_stream(value))
        }
        _ => format!(", e.g. `{}`", key.example()),
    };
    ctxt.error_spanned_by(value, format!("`{}` expects a string{quoted}", key.as_str()));
    None
}

fn non_empty_str(ctxt: &mut Ctxt, key: &Key, value: &Expr) -> Option<LitStr> {
    let lit = str_lit(ctxt, key, value)?;
    if lit.value().trim().is_empty() {
        ctxt.error_spanned_by(&lit, format!("`{}` must not be empty, e.g. `{}`", key.as_str(), key.example()));
        return None;
    }
    Some(lit)
}

/// An integer literal, possibly negated, with the literal for spans.
fn int(ctxt: &mut Ctxt, key: &Key, value: &Expr) -> Option<(i128, syn::LitInt)> {
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
        _ => format!(", e.g. `{}`", key.example()),
    };
    ctxt.error_spanned_by(value, format!("`{}` expects an integer{hint}", key.as_str()));
    None
}

fn positive_duration(ctxt: &mut Ctxt, key: &Key, value: &Expr) -> Option<Duration> {
    if let Expr::Lit(ExprLit { lit: Lit::Int(lit), .. }) = value {
        if !lit.suffix().is_empty() {
            ctxt.error_spanned_by(value, format!("write the duration in quotes: `{} = \"{lit}\"`", key.as_str()));
            return None;
        }
    }
    let lit = str_lit(ctxt, key, value)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn errors(tokens: TokenStream) -> Vec<String> {
        let mut ctxt = Ctxt::new();
        let _ = parse(&mut ctxt, tokens);
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
        assert!(errs[4].starts_with("cron schedules are not supported"));
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
