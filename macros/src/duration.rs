//! The duration (`"1m30s"`) and backoff (`"exponential(100ms, max = 1m)"`)
//! grammars of the attribute values, and the code that rebuilds them.
//!
//! Parsers return the reason as a `String`; the caller spans it on the
//! literal the user wrote.

use std::time::Duration;

use proc_macro2::TokenStream;
use quote::quote;

use crate::case::{list, nearest};

/// What a duration looks like, appended to every duration error.
pub(crate) const DURATION_FORM: &str =
    "expected integers with units `ms`, `s`, `m`, `h` or `d`, e.g. \"30s\", \"100ms\" or \"1m30s\"";

/// What a backoff looks like, appended to every backoff error.
pub(crate) const BACKOFF_FORM: &str = "expected \"fixed(<duration>)\", \"linear(<duration>, max = <duration>)\" \
     or \"exponential(<duration>, factor = <number>, max = <duration>, jitter)\"";

/// Parses `"30s"`, `"100ms"`, `"1m30s"`, `"1h 15m"`: one or more integers,
/// each followed by a unit (`ms`, `s`, `m`, `h`, `d`).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("the duration is empty".to_owned());
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("expected a number at `{rest}`"));
        }
        let (number, tail) = rest.split_at(digits);
        let number: u64 = number.parse().map_err(|_| format!("`{number}` is too large"))?;
        if tail.starts_with(['.', ',']) {
            return Err("fractions are not supported: use a smaller unit, e.g. `1500ms` for 1.5 s".to_owned());
        }
        let tail = tail.trim_start();
        let unit_len = tail.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let millis_per_unit: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(format!("`{number}` has no unit")),
            other => {
                let hint = match other.to_ascii_lowercase().as_str() {
                    "msec" | "msecs" | "millis" | "millisecond" | "milliseconds" => " (did you mean `ms`?)",
                    "sec" | "secs" | "second" | "seconds" => " (did you mean `s`?)",
                    "min" | "mins" | "minute" | "minutes" => " (did you mean `m`?)",
                    "hr" | "hrs" | "hour" | "hours" => " (did you mean `h`?)",
                    "day" | "days" => " (did you mean `d`?)",
                    _ => "",
                };
                return Err(format!("unknown unit `{other}`{hint}"));
            }
        };
        total = number
            .checked_mul(millis_per_unit)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| "the duration is too long".to_owned())?;
        rest = tail.trim_start();
    }
    Ok(Duration::from_millis(total))
}

/// How the delay grows between retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BackoffKind {
    /// The same delay every time.
    Fixed,
    /// `step`, `2 × step`, …
    Linear,
    /// `base`, `base × factor`, …
    Exponential,
}

/// A parsed `backoff = "..."` value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BackoffSpec {
    pub(crate) kind: BackoffKind,
    pub(crate) base: Duration,
    pub(crate) factor: Option<f64>,
    pub(crate) max: Option<Duration>,
    pub(crate) jitter: bool,
}

/// Parses `"fixed(1s)"`, `"linear(1s, max = 1m)"`,
/// `"exponential(100ms, factor = 2, max = 10m, jitter)"`.
pub(crate) fn parse_backoff(text: &str) -> Result<BackoffSpec, String> {
    let text = text.trim();
    let Some(open) = text.find('(') else {
        return Err(match kind_of(text) {
            Ok(_) => format!("`{text}` needs a delay in parentheses, e.g. `{text}(1s)`"),
            Err(e) => e,
        });
    };
    let kind = kind_of(text[..open].trim())?;
    let Some(inner) = text[open + 1..].strip_suffix(')') else {
        return Err("expected the options to end with `)`".to_owned());
    };
    if inner.contains(['(', ')']) {
        return Err("unbalanced parentheses".to_owned());
    }
    let mut parts = inner.split(',').map(str::trim);
    let base = match parts.next() {
        Some("") | None => return Err("the first argument must be the delay, e.g. `fixed(1s)`".to_owned()),
        Some(base) => parse_duration(base).map_err(|e| format!("bad delay `{base}`: {e}"))?,
    };
    let mut spec = BackoffSpec { kind, base, factor: None, max: None, jitter: false };
    let mut seen: Vec<&str> = Vec::new();
    for part in parts {
        let (key, value) = match part.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (part, None),
        };
        if key.is_empty() {
            return Err("empty option (a stray `,`?)".to_owned());
        }
        if seen.contains(&key) {
            return Err(format!("`{key}` is given more than once"));
        }
        seen.push(key);
        match (key, value) {
            ("factor", Some(v)) => {
                if kind != BackoffKind::Exponential {
                    return Err("`factor` only applies to `exponential` backoff".to_owned());
                }
                let factor: f64 = v.parse().map_err(|_| format!("`factor` must be a number, not `{v}`"))?;
                if !factor.is_finite() || factor < 1.0 {
                    return Err(format!("`factor` must be at least 1, not `{v}`"));
                }
                spec.factor = Some(factor);
            }
            ("max", Some(v)) => {
                let max = parse_duration(v).map_err(|e| format!("bad `max` `{v}`: {e}"))?;
                if max < spec.base {
                    return Err(format!("`max = {v}` is shorter than the first delay"));
                }
                spec.max = Some(max);
            }
            ("jitter", None | Some("true")) => spec.jitter = true,
            ("jitter", Some("false")) => spec.jitter = false,
            ("jitter", Some(v)) => return Err(format!("`jitter` takes no value (or `true`/`false`), not `{v}`")),
            ("factor" | "max", None) => return Err(format!("`{key}` needs a value: `{key} = ...`")),
            (other, _) => {
                let valid: &[&str] = match kind {
                    BackoffKind::Exponential => &["factor", "max", "jitter"],
                    BackoffKind::Fixed | BackoffKind::Linear => &["max", "jitter"],
                };
                let hint = nearest(other, valid).map(|k| format!("did you mean `{k}`? ")).unwrap_or_default();
                return Err(format!("unknown option `{other}`: {hint}options are {}", list(valid, "and")));
            }
        }
    }
    Ok(spec)
}

fn kind_of(name: &str) -> Result<BackoffKind, String> {
    match name {
        "fixed" => Ok(BackoffKind::Fixed),
        "linear" => Ok(BackoffKind::Linear),
        "exponential" => Ok(BackoffKind::Exponential),
        other => {
            let hint = nearest(other, &["fixed", "linear", "exponential"])
                .map(|k| format!(" (did you mean `{k}`?)"))
                .unwrap_or_default();
            Err(format!("unknown backoff kind `{other}`{hint}"))
        }
    }
}

/// `Duration::from_secs(..)` (or `from_millis`) through `krate`.
pub(crate) fn duration_tokens(krate: &syn::Path, duration: Duration) -> TokenStream {
    let millis = duration.as_millis();
    let millis = u64::try_from(millis).unwrap_or(u64::MAX);
    if millis % 1000 == 0 {
        let secs = millis / 1000;
        quote!(#krate::__private::Duration::from_secs(#secs))
    } else {
        quote!(#krate::__private::Duration::from_millis(#millis))
    }
}

impl BackoffSpec {
    /// A const expression building the `Backoff` through `krate`.
    pub(crate) fn to_tokens(&self, krate: &syn::Path) -> TokenStream {
        let base = duration_tokens(krate, self.base);
        let mut tokens = match self.kind {
            BackoffKind::Fixed => quote!(#krate::Backoff::fixed(#base)),
            BackoffKind::Linear => quote!(#krate::Backoff::linear(#base)),
            BackoffKind::Exponential => quote!(#krate::Backoff::exponential(#base)),
        };
        if let Some(factor) = self.factor {
            let factor = proc_macro2::Literal::f64_suffixed(factor);
            tokens = quote!(#tokens.factor(#factor));
        }
        if let Some(max) = self.max {
            let max = duration_tokens(krate, max);
            tokens = quote!(#tokens.max(#max));
        }
        if self.jitter {
            tokens = quote!(#tokens.jitter(true));
        }
        tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("100ms"), Ok(ms(100)));
        assert_eq!(parse_duration("30s"), Ok(ms(30_000)));
        assert_eq!(parse_duration("2m"), Ok(ms(120_000)));
        assert_eq!(parse_duration("1h"), Ok(ms(3_600_000)));
        assert_eq!(parse_duration("1d"), Ok(ms(86_400_000)));
        assert_eq!(parse_duration("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse_duration("1h 15m"), Ok(ms(4_500_000)));
        assert_eq!(parse_duration("1s500ms"), Ok(ms(1_500)));
        assert_eq!(parse_duration("0s"), Ok(ms(0)));
    }

    #[test]
    fn bad_durations_say_why() {
        assert_eq!(parse_duration(""), Err("the duration is empty".to_owned()));
        assert_eq!(parse_duration("30"), Err("`30` has no unit".to_owned()));
        assert_eq!(parse_duration("30 sec"), Err("unknown unit `sec` (did you mean `s`?)".to_owned()));
        assert_eq!(parse_duration("1y"), Err("unknown unit `y`".to_owned()));
        assert_eq!(parse_duration("s"), Err("expected a number at `s`".to_owned()));
        assert_eq!(
            parse_duration("1.5s"),
            Err("fractions are not supported: use a smaller unit, e.g. `1500ms` for 1.5 s".to_owned())
        );
        assert_eq!(parse_duration("5 minutes"), Err("unknown unit `minutes` (did you mean `m`?)".to_owned()));
        assert_eq!(parse_duration("1m 30 s"), Ok(ms(90_000)));
        assert!(parse_duration("-1s").is_err());
        assert_eq!(parse_duration("99999999999999999999d"), Err("`99999999999999999999` is too large".to_owned()));
        assert_eq!(parse_duration("999999999999999d"), Err("the duration is too long".to_owned()));
    }

    #[test]
    fn backoffs() {
        assert_eq!(
            parse_backoff("fixed(1s)"),
            Ok(BackoffSpec { kind: BackoffKind::Fixed, base: ms(1000), factor: None, max: None, jitter: false })
        );
        assert_eq!(
            parse_backoff("linear(1s, max = 1m)"),
            Ok(BackoffSpec {
                kind: BackoffKind::Linear,
                base: ms(1000),
                factor: None,
                max: Some(ms(60_000)),
                jitter: false
            })
        );
        assert_eq!(
            parse_backoff(" exponential( 100ms , factor = 2.5, max = 10m, jitter ) "),
            Ok(BackoffSpec {
                kind: BackoffKind::Exponential,
                base: ms(100),
                factor: Some(2.5),
                max: Some(ms(600_000)),
                jitter: true,
            })
        );
        assert_eq!(parse_backoff("exponential(1s, jitter = false)").map(|b| b.jitter), Ok(false));
    }

    #[test]
    fn bad_backoffs_say_why() {
        let err = |s: &str| parse_backoff(s).err().unwrap_or_default();
        assert_eq!(err("expo(1s)"), "unknown backoff kind `expo` (did you mean `exponential`?)");
        assert_eq!(err("fixed"), "`fixed` needs a delay in parentheses, e.g. `fixed(1s)`");
        assert_eq!(err("fixed(1s"), "expected the options to end with `)`");
        assert_eq!(err("fixed()"), "the first argument must be the delay, e.g. `fixed(1s)`");
        assert_eq!(err("fixed(1)"), "bad delay `1`: `1` has no unit");
        assert_eq!(err("linear(1s, factor = 2)"), "`factor` only applies to `exponential` backoff");
        assert_eq!(err("exponential(1s, factor = 0.5)"), "`factor` must be at least 1, not `0.5`");
        assert_eq!(err("exponential(1s, factor = x)"), "`factor` must be a number, not `x`");
        assert_eq!(err("exponential(1m, max = 1s)"), "`max = 1s` is shorter than the first delay");
        assert_eq!(
            err("exponential(1s, maxx = 1m)"),
            "unknown option `maxx`: did you mean `max`? options are `factor`, `max` and `jitter`"
        );
        assert_eq!(err("fixed(1s, max = 1m, max = 2m)"), "`max` is given more than once");
        assert_eq!(err("fixed(1s,)"), "empty option (a stray `,`?)");
        assert_eq!(err("fixed(1s, max)"), "`max` needs a value: `max = ...`");
    }
}
