//! The token every request needs (when the board has one), the CSRF token of
//! its forms, and the security headers of every response.

use std::collections::hash_map::RandomState;
use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use axum::extract::{NestedPath, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::Shared;
use crate::html::pct;

/// The cookie that carries the token once a page was opened with `?token=`.
pub(crate) const COOKIE: &str = "errand_board_token";

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// 32 random hex digits from the OS; should the OS have none to give, from
/// the process's randomly keyed hasher and the clock.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        for (i, chunk) in bytes.chunks_mut(8).enumerate() {
            let mut hasher = RandomState::new().build_hasher();
            hasher.write_usize(i);
            hasher.write_u128(
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()),
            );
            chunk.copy_from_slice(&hasher.finish().to_le_bytes());
        }
    }
    hex(&bytes)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Compares two secrets in time independent of where they differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

enum Access {
    Granted,
    /// By `?token=`: set the cookie, and on a GET redirect without it.
    ByQuery(Vec<(String, String)>),
    Denied,
}

fn access(token: &str, req: &Request) -> Access {
    let headers = req.headers();
    let bearer = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .any(|given| same_secret(given.trim(), token));
    if bearer || cookie(headers).is_some_and(|given| same_secret(&given, &hex(token.as_bytes()))) {
        return Access::Granted;
    }
    if let Ok(Query(params)) = Query::<Vec<(String, String)>>::try_from_uri(req.uri())
        && params.iter().any(|(k, v)| k == "token" && same_secret(v, token))
    {
        return Access::ByQuery(params.into_iter().filter(|(k, _)| k != "token").collect());
    }
    Access::Denied
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('=').map(str::to_owned))
}

/// The board's middleware: the token check (when it has one) and the
/// security headers.
pub(crate) async fn guard(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let mut set_cookie = None;
    if let Some(token) = shared.token.as_deref() {
        match access(token, &req) {
            Access::Granted => {}
            Access::Denied => return secure(unauthorized()),
            Access::ByQuery(rest) => {
                let mount = req.extensions().get::<NestedPath>().map(|p| p.as_str().trim_end_matches('/').to_owned());
                let mount = mount.unwrap_or_default();
                let cookie_path = if mount.is_empty() { "/".to_owned() } else { mount.clone() };
                let cookie =
                    format!("{COOKIE}={}; Path={cookie_path}; HttpOnly; SameSite=Strict", hex(token.as_bytes()));
                if req.method() == Method::GET || req.method() == Method::HEAD {
                    let mut target = format!("{mount}{}", req.uri().path());
                    for (i, (k, v)) in rest.iter().enumerate() {
                        target.push(if i == 0 { '?' } else { '&' });
                        let _ = write!(target, "{}={}", pct(k), pct(v));
                    }
                    let mut response = StatusCode::SEE_OTHER.into_response();
                    if let (Ok(location), Ok(cookie)) = (HeaderValue::from_str(&target), HeaderValue::from_str(&cookie))
                    {
                        response.headers_mut().insert(header::LOCATION, location);
                        response.headers_mut().insert(header::SET_COOKIE, cookie);
                        return secure(response);
                    }
                }
                set_cookie = HeaderValue::from_str(&cookie).ok();
            }
        }
    }
    let mut response = next.run(req).await;
    if let Some(cookie) = set_cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    secure(response)
}

fn unauthorized() -> Response {
    let body = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Token needed · errand board</title>\
        </head><body><h1>This board needs a token</h1><p>Open it once with <code>?token=&lt;token&gt;</code> \
        (it is then kept in a cookie), or send the header <code>Authorization: Bearer &lt;token&gt;</code>.</p></body></html>";
    let mut response = (StatusCode::UNAUTHORIZED, axum::response::Html(body)).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"errand board\""));
    response
}

fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.entry(header::CONTENT_SECURITY_POLICY).or_insert(HeaderValue::from_static(CSP));
    headers.entry(header::X_CONTENT_TYPE_OPTIONS).or_insert(HeaderValue::from_static("nosniff"));
    headers.entry(header::X_FRAME_OPTIONS).or_insert(HeaderValue::from_static("DENY"));
    headers.entry(header::REFERRER_POLICY).or_insert(HeaderValue::from_static("same-origin"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn secrets_compare() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}
