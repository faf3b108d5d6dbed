//! Stable hashes and URLs safe to print.

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv_step(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, b| (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME))
}

/// 64-bit FNV-1a of `bytes`: a stable fingerprint, the same in every
/// process and version (migration checksums, `unique = "args"` keys). Not a
/// security measure.
///
/// # Examples
///
/// ```
/// assert_eq!(errand_runtime::backend::fnv1a(b""), 0xcbf2_9ce4_8422_2325);
/// assert_eq!(errand_runtime::backend::fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
/// ```
pub fn fnv1a(bytes: &[u8]) -> u64 {
    fnv_step(FNV_OFFSET, bytes)
}

/// FNV-1a of several parts, each followed by a separator byte, so that
/// `("ab", "c")` and `("a", "bc")` differ (advisory lock ids).
pub fn fnv1a_parts(parts: &[&[u8]]) -> u64 {
    parts.iter().fold(FNV_OFFSET, |hash, part| fnv_step(fnv_step(hash, part), &[0xff]))
}

/// `url` with its password masked (`user:***@`, `password=***`), for
/// messages and `Debug` output.
///
/// # Examples
///
/// ```
/// use errand_runtime::backend::redact_url;
/// assert_eq!(redact_url("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
/// assert_eq!(redact_url("redis://h/0?password=x&db=1"), "redis://h/0?password=***&db=1");
/// ```
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let start = scheme_end + 3;
        let authority_end = out[start..].find(['/', '?']).map_or(out.len(), |i| start + i);
        if let Some(at) = out[start..authority_end].rfind('@')
            && let Some(colon) = out[start..start + at].find(':')
        {
            out.replace_range(start + colon + 1..start + at, "***");
        }
    }
    if let Some(q) = out.find('?') {
        let query: Vec<&str> =
            out[q + 1..].split('&').map(|p| if p.starts_with("password=") { "password=***" } else { p }).collect();
        out = format!("{}?{}", &out[..q], query.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_separated() {
        assert_ne!(fnv1a_parts(&[b"ab", b"c"]), fnv1a_parts(&[b"a", b"bc"]));
        // The separator is mixed in after every part (compatible with earlier releases).
        assert_eq!(fnv1a_parts(&[b"x"]), fnv_step(fnv1a(b"x"), &[0xff]));
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://u@h/db?password=x&sslmode=y"), "postgres://u@h/db?password=***&sslmode=y");
        assert_eq!(redact_url("redis://:secret@host:6379/0"), "redis://:***@host:6379/0");
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
    }
}
