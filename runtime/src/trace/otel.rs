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
/// long to store.
pub(super) fn encode(span: &SpanContext) -> Option<String> {
    if !span.is_valid() {
        return None;
    }
    let mut stored = format!("00-{}-{}-{:02x}", span.trace_id(), span.span_id(), span.trace_flags().to_u8());
    let state = span.trace_state().header();
    if !state.is_empty() {
        stored.push('\n');
        stored.push_str(&state);
    }
    (stored.len() <= MAX_TRACE_LEN).then_some(stored)
}

/// The remote span context a stored string names, or why it names none.
pub(super) fn decode(stored: &str) -> Result<SpanContext, String> {
    let (parent, state) = stored.split_once('\n').unwrap_or((stored, ""));
    let parts: Vec<&str> = parent.trim().split('-').collect();
    let [version, trace_id, span_id, flags] = parts[..] else {
        return Err(format!("`{parent}` is not a traceparent (version-traceid-spanid-flags)"));
    };
    if version.len() != 2 || version == "ff" || u8::from_str_radix(version, 16).is_err() {
        return Err(format!("traceparent `{parent}` has an unknown version"));
    }
    if trace_id.len() != 32 || span_id.len() != 16 || flags.len() != 2 {
        return Err(format!("traceparent `{parent}` has fields of the wrong length"));
    }
    let trace_id = TraceId::from_hex(trace_id).map_err(|e| format!("traceparent `{parent}`: trace id: {e}"))?;
    let span_id = SpanId::from_hex(span_id).map_err(|e| format!("traceparent `{parent}`: span id: {e}"))?;
    let flags = u8::from_str_radix(flags, 16).map_err(|e| format!("traceparent `{parent}`: flags: {e}"))?;
    // An unreadable tracestate is dropped; the trace still continues.
    let state = TraceState::from_str(state.trim()).unwrap_or_default();
    let span = SpanContext::new(trace_id, span_id, TraceFlags::new(flags) & TraceFlags::SAMPLED, true, state);
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
    }

    #[test]
    fn bad_contexts_say_why() {
        for (stored, why) in [
            ("", "not a traceparent"),
            ("00-abc-def", "not a traceparent"),
            ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "unknown version"),
            ("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", "wrong length"),
            ("00-zzf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "trace id"),
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
