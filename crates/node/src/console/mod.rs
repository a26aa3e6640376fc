//! The management console (`/console` on the manager's HTTPS listener;
//! `/carbon` leads there, as in the seed): server-rendered pages over the
//! same accounts and operations as the admin API. Workers serve none.
//!
//! Sessions are the admin API's, carried in a cookie that is `Secure`,
//! `HttpOnly` and `SameSite=Strict`; every form that changes something
//! carries a CSRF token derived from the session (the login form a
//! double-submit token), and the pages forbid framing and any script or
//! style not served from here.

mod assets;
mod pages;
pub(crate) mod rates;
mod views;

use crate::admin::auth::Caller;
use crate::admin::PeerAddr;
use crate::service::{error_response, full_response};
use crate::Node;
use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use http::Request;
use std::net::SocketAddr;
use std::sync::Arc;
use wharf_runtime::{ResponseBody, Scheme};

const SESSION_COOKIE: &str = "wharf_console";
const LOGIN_CSRF_COOKIE: &str = "wharf_console_login";

/// A signed-in console user.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub caller: Caller,
    token: String,
    /// What every form of this session must carry back.
    pub csrf: String,
}

/// The CSRF token of a session: derived from its (secret) token, so it
/// needs no storage and dies with the session.
fn csrf_of(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(format!("wharf console csrf\0{token}")))
}

/// A cookie's value from the `Cookie` header.
pub(crate) fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `Set-Cookie` for a console cookie.
pub(crate) fn set_cookie(name: &str, value: &str, max_age_s: u64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/console; Max-Age={max_age_s}; Secure; HttpOnly; SameSite=Strict"
    ))
    .expect("a cookie of hex characters is a valid header")
}

/// Compares in time independent of where the first difference is.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Session {
    /// A refusal unless `form_token` is this session's CSRF token.
    pub(crate) fn check_csrf(&self, form_token: &str) -> Option<Response> {
        if same(&self.csrf, form_token) {
            None
        } else {
            tracing::warn!(user = %self.caller.user, "refused a console form without its CSRF token");
            Some((
                StatusCode::FORBIDDEN,
                "this form is stale or did not come from the console; reload the page and try again",
            )
                .into_response())
        }
    }

    pub(crate) fn token(&self) -> &str {
        &self.token
    }
}

impl FromRequestParts<Arc<Node>> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, node: &Arc<Node>) -> Result<Session, Response> {
        let to_login = || {
            let next = parts
                .uri
                .path_and_query()
                .map_or("/console/", |p| p.as_str())
                .to_string();
            let query = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
            Redirect::to(&format!("/console/login?{query}")).into_response()
        };
        let Some(auth) = node.admin.as_ref() else {
            return Err(StatusCode::NOT_FOUND.into_response());
        };
        let Some(token) = cookie(parts, SESSION_COOKIE) else {
            return Err(to_login());
        };
        match auth.session(token) {
            Ok(caller) => Ok(Session {
                csrf: csrf_of(token),
                token: token.to_string(),
                caller,
            }),
            Err(_) => Err(to_login()),
        }
    }
}

/// The peer of the request (for the login brakes).
pub(crate) fn peer(parts: &Parts) -> std::net::IpAddr {
    parts
        .extensions
        .get::<PeerAddr>()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |p| p.0.ip())
}

fn with_headers(mut resp: Response<ResponseBody>) -> Response<ResponseBody> {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Serves one request under `/console` or `/carbon`.
pub(crate) async fn handle<B>(
    node: Arc<Node>,
    mut req: Request<B>,
    scheme: &Scheme,
    peer: SocketAddr,
) -> Response<ResponseBody>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if node.config.server.worker_node || node.admin.is_none() {
        return error_response(
            StatusCode::NOT_FOUND,
            "worker nodes serve no management console; it is on the management node",
        );
    }
    let path = req.uri().path().to_string();
    if !matches!(scheme, Scheme::Https) {
        // The console only over HTTPS: its cookies are Secure.
        let to = format!("{}/console/", node.urls.mgt_https_base());
        let mut r = error_response(
            StatusCode::PERMANENT_REDIRECT,
            &format!("the console is served over HTTPS: {to}"),
        );
        if let Ok(v) = HeaderValue::from_str(&to) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        return r;
    }
    if path == "/carbon" || path.starts_with("/carbon/") {
        let mut r = full_response(
            StatusCode::FOUND,
            "text/plain; charset=utf-8",
            "see /console/\n",
        );
        r.headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static("/console/"));
        return r;
    }
    req.extensions_mut().insert(PeerAddr(peer));
    with_headers(crate::admin::serve_router(pages::router(node), req).await)
}
