//! W3C trace context to and from the string a task stores (feature `otel`).
//!
//! The stored form is `traceparent` (`00-<trace id>-<span id>-<flags>`),
//! then, when the span has one, a newline and `tracestate`.

use std::str::FromStr;

use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::Parent;
use crate::backend::MAX_TRACE_LEN;

/// The current span's context in the stored form, if it has a valid one.
pub(super) fn current() -> Option<String> {
    let context = Span::current().context();
    let span = context.span();
    encode(span.span_context())
}

/// `span` in the stored form; `None` for an invalid context or one too
/// long to store. Written by hand: this runs on every enqueue.
pub(super) fn encode(span: &SpanContext) -> Option<String> {
    if !span.is_valid() {
        return None;
    }
    let state = span.trace_state().header();
    let mut stored = String::with_capacity(55 + if state.is_empty() { 0 } else { 1 + state.len() });
    stored.push_str("00-");
    push_hex(&mut stored, &span.trace_id().to_bytes());
    stored.push('-');
    push_hex(&mut stored, &span.span_id().to_bytes());
    stored.push('-');
    push_hex(&mut stored, &[span.trace_flags().to_u8()]);
    if !state.is_empty() {
        stored.push('\n');
        stored.push_str(&state);
    }
    (stored.len() <= MAX_TRACE_LEN).then_some(stored)
}

/// Appends `bytes` as lowercase hex.
fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
}

/// `hex` as `N` bytes: exactly `2 * N` hex digits.
fn hex_bytes<const N: usize>(hex: &str) -> Option<[u8; N]> {
    fn nibble(digit: u8) -> Option<u8> {
        match digit {
            b'0'..=b'9' => Some(digit - b'0'),
            b'a'..=b'f' => Some(digit - b'a' + 10),
            b'A'..=b'F' => Some(digit - b'A' + 10),
            _ => None,
        }
    }
    let hex = hex.as_bytes();
    if hex.len() != 2 * N {
        return None;
    }
    let mut out = [0; N];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

/// The remote span context a stored string names, or why it names none.
/// Parsed by hand: this runs on every run of a traced task.
pub(super) fn decode(stored: &str) -> Result<SpanContext, String> {
    let (parent, state) = match stored.bytes().position(|b| b == b'\n') {
        Some(at) => (&stored[..at], &stored[at + 1..]),
        None => (stored, ""),
    };
    let parent = parent.trim();
    let dashes = parent.as_bytes();
    let (version, trace_id, span_id, flags, more) =
        if dashes.len() == 55 && dashes[2] == b'-' && dashes[35] == b'-' && dashes[52] == b'-' {
            // The one shape errand writes, sliced without a search.
            (&parent[..2], &parent[3..35], &parent[36..52], &parent[53..], false)
        } else {
            let mut fields = parent.split('-');
            let (Some(version), Some(trace_id), Some(span_id), Some(flags)) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err(format!("`{parent}` is not a traceparent (version-traceid-spanid-flags)"));
            };
            (version, trace_id, span_id, flags, fields.next().is_some())
        };
    // Version 00 has exactly four fields; later versions may append more.
    if hex_bytes::<1>(version).is_none() || version == "ff" || (version == "00" && more) {
        return Err(format!("traceparent `{parent}` has an unknown version"));
    }
    let trace_id = hex_bytes::<16>(trace_id)
        .ok_or_else(|| format!("traceparent `{parent}`: the trace id is not 32 hex digits"))?;
    let span_id =
        hex_bytes::<8>(span_id).ok_or_else(|| format!("traceparent `{parent}`: the span id is not 16 hex digits"))?;
    let [flags] =
        hex_bytes::<1>(flags).ok_or_else(|| format!("traceparent `{parent}`: the flags are not 2 hex digits"))?;
    // An unreadable tracestate is dropped; the trace still continues.
    let state = state.trim();
    let state = if state.is_empty() { TraceState::default() } else { TraceState::from_str(state).unwrap_or_default() };
    let flags = TraceFlags::new(flags) & TraceFlags::SAMPLED;
    let span = SpanContext::new(TraceId::from_bytes(trace_id), SpanId::from_bytes(span_id), flags, true, state);
    if span.is_valid() { Ok(span) } else { Err(format!("traceparent `{parent}` has an all-zero id")) }
}

/// Makes `span` continue the trace `stored` names, as `parent` says. A
/// stored value that does not read is logged and ignored: the run goes on
/// in a trace of its own.
pub(super) fn continue_trace(span: &Span, stored: &str, parent: Parent) {
    let remote = match decode(stored) {
        Ok(remote) => remote,
        Err(why) => {
            tracing::debug!(%why, "the task's stored trace context does not read; its run starts a new trace");
            return;
        }
    };
    match parent {
        Parent::Child => {
            let _ = span.set_parent(Context::new().with_remote_span_context(remote));
        }
        Parent::Link => span.add_link(remote),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_contexts_read_back() {
        let stored = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\nvendor=abc,other=1";
        let span = decode(stored).unwrap();
        assert_eq!(span.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(span.span_id().to_string(), "00f067aa0ba902b7");
        assert!(span.is_sampled());
        assert!(span.is_remote());
        assert_eq!(span.trace_state().get("vendor"), Some("abc"));
        assert_eq!(encode(&span).as_deref(), Some(stored));
        let future = decode("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-whatever").unwrap();
        assert!(!future.is_sampled(), "a later version's extra fields are ignored");
    }

    #[test]
    fn bad_contexts_say_why() {
        for (stored, why) in [
            ("", "not a traceparent"),
            ("00-abc-def", "not a traceparent"),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", "unknown version"),
            ("00-\u{fc}f92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "trace id is not 32 hex digits"),
            ("0\u{e9}4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "not a traceparent"),
            ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "unknown version"),
            ("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", "trace id is not 32 hex digits"),
            ("00-zzf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "trace id is not 32 hex digits"),
            ("00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "trace id is not 32 hex digits"),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01", "span id is not 16 hex digits"),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1", "flags are not 2 hex digits"),
            ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", "all-zero"),
        ] {
            let error = decode(stored).unwrap_err();
            assert!(error.contains(why), "{stored:?}: {error}");
        }
    }

    #[test]
    fn invalid_contexts_are_not_stored() {
        assert_eq!(encode(&SpanContext::empty_context()), None);
    }
}
