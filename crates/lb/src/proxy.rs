//! The request path: route, pick a member, forward, retry, stream back.

use crate::access::Entry;
use crate::body::{ProxyBody, Reclaim, Tracked};
use crate::headers::{
    add_forwarded, check_framing, remove_hop_by_hop, upgrade_of, ClientSide, Peer,
};
use crate::metrics::{pool_labels, ServiceMetrics, UpstreamErrorLabels};
use crate::pool::Backend;
use crate::routes::NoRoute;
use crate::upstream::SendError;
use crate::State;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// The cookie that carries session affinity.
pub const AFFINITY_COOKIE: &str = "WHARF_LB_AFFINITY";

/// Which listener a request came in on.
#[derive(Clone, Copy, Debug)]
pub struct Listener {
    /// `http` or `https`.
    pub proto: &'static str,
    pub port: u16,
}

fn text(status: StatusCode, message: &str) -> Response<ProxyBody> {
    let mut r = Response::new(
        Full::new(Bytes::from(format!("{message}\n")))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// What the access log needs about a request; gathered only when it is on.
struct Record {
    peer: SocketAddr,
    time: SystemTime,
    method: String,
    target: String,
    version: Version,
    referer: String,
    user_agent: String,
    host: String,
    service: String,
}

impl Record {
    fn of(req: &Request<Incoming>, peer: SocketAddr, host: &str) -> Record {
        let header = |name: header::HeaderName| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        Record {
            peer,
            time: SystemTime::now(),
            method: req.method().to_string(),
            target: req
                .uri()
                .path_and_query()
                .map_or("/".to_string(), |p| p.to_string()),
            version: req.version(),
            referer: header(header::REFERER),
            user_agent: header(header::USER_AGENT),
            host: host.to_string(),
            service: "-".to_string(),
        }
    }

    fn entry(&self, status: u16, bytes: u64, member: &str, start: Instant) -> Entry {
        Entry {
            peer: self.peer,
            time: self.time,
            method: self.method.clone(),
            target: self.target.clone(),
            version: self.version,
            status,
            bytes,
            referer: self.referer.clone(),
            user_agent: self.user_agent.clone(),
            host: self.host.clone(),
            service: self.service.clone(),
            member: member.to_string(),
            duration: start.elapsed(),
        }
    }
}

/// One request's bookkeeping: its metrics handles and access log record.
struct Books<'a> {
    state: &'a State,
    metrics: &'a ServiceMetrics,
    rec: Option<Record>,
    start: Instant,
}

impl Books<'_> {
    /// Answers without a member: counts and logs it.
    fn local(&self, resp: Response<ProxyBody>) -> Response<ProxyBody> {
        let status = resp.status().as_u16();
        self.metrics.answered(status);
        if let Some(rec) = &self.rec {
            let bytes = resp.body().size_hint().exact().unwrap_or(0);
            self.state
                .access
                .load()
                .log(&rec.entry(status, bytes, "-", self.start));
        }
        resp
    }
}

/// Why a request has no route, for the client.
pub(crate) fn no_route_message(e: &NoRoute) -> String {
    match e {
        NoRoute::UnknownHost(h) => format!("no service is configured for host {h}"),
        NoRoute::UnknownTenant(t) => format!("no such tenant: {t}"),
        NoRoute::TenantOutOfRange(t) => format!("no cluster serves tenant {t}"),
    }
}

pub(crate) fn no_member_message(key: &crate::routes::PoolKey) -> String {
    format!("no live member in {key}; try again shortly")
}

pub(crate) fn none_answered_message(key: &crate::routes::PoolKey) -> String {
    format!("no member of {key} answered")
}

fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

fn affinity_token(req: &Request<Incoming>) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == AFFINITY_COOKIE).then(|| v.to_string())
        })
}

pub async fn handle(
    state: Arc<State>,
    mut req: Request<Incoming>,
    peer: SocketAddr,
    listener: Listener,
) -> Response<ProxyBody> {
    let start = Instant::now();
    let host = match req.headers().get(header::HOST) {
        Some(h) => h.to_str().unwrap_or("").to_string(),
        None => req
            .uri()
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default(),
    };
    let logging = state.access.load().enabled();
    let mut books = Books {
        state: &state,
        metrics: &state.unrouted,
        rec: logging.then(|| Record::of(&req, peer, &host)),
        start,
    };

    if let Err(bad) = check_framing(req.headers()) {
        tracing::warn!(%peer, reason = bad.0, "refused a request with ambiguous framing");
        let mut r = text(StatusCode::BAD_REQUEST, &format!("bad request: {}", bad.0));
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return books.local(r);
    }
    if host.is_empty() {
        return books.local(text(StatusCode::BAD_REQUEST, "bad request: no Host header"));
    }

    let active = state.active.load_full();
    // A cheap clone (shared bytes): the route borrows the path.
    let uri = req.uri().clone();
    let routed = match active.routes.route(&host, uri.path(), &state.tenants) {
        Ok(r) => r,
        Err(e) => return books.local(text(StatusCode::NOT_FOUND, &no_route_message(&e))),
    };
    let service = &routed.route.service;
    books.metrics = service
        .metrics
        .get_or_init(|| Arc::new(ServiceMetrics::new(&state.metrics, &service.name)));
    if let Some(rec) = &mut books.rec {
        rec.service = service.name.clone();
    }
    let key = &routed.target.pool;
    let pools = state.pools.load();
    let no_member = || {
        let mut r = text(StatusCode::SERVICE_UNAVAILABLE, &no_member_message(key));
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        r
    };
    let Some(pool) = pools.get(key).filter(|p| !p.backends.is_empty()) else {
        return books.local(no_member());
    };

    let affinity = if service.affinity.enabled {
        affinity_token(&req)
    } else {
        None
    };
    let upgrade = if req.version() <= Version::HTTP_11 {
        upgrade_of(req.headers())
    } else {
        None
    };
    let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let mut headers = parts.headers;
    remove_hop_by_hop(&mut headers);
    add_forwarded(
        &mut headers,
        &ClientSide {
            peer: &Peer::new(peer),
            proto: listener.proto,
            host: &host,
            port: listener.port,
        },
    );
    if let Ok(v) = HeaderValue::from_str(&host) {
        headers.insert(header::HOST, v);
    }
    if let Some(proto) = &upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, proto.clone());
    }
    let body = (!body.is_end_stream()).then(|| Reclaim::new(body));
    let path_and_query = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));

    let mut tried: Vec<Arc<Backend>> = vec![];
    let (resp, lease, backend, guard) = loop {
        let now = Instant::now();
        let Some(backend) = pool.pick(service.algorithm, affinity.as_deref(), &tried, now) else {
            if tried.is_empty() {
                return books.local(no_member());
            }
            return books.local(text(StatusCode::BAD_GATEWAY, &none_answered_message(key)));
        };
        let guard = backend.start();
        let mut up = Request::new(match &body {
            Some(b) => b.attempt(),
            None => Empty::<Bytes>::new()
                .map_err(|never| match never {})
                .boxed_unsync(),
        });
        *up.method_mut() = parts.method.clone();
        // Origin form; the Host header names the site.
        *up.uri_mut() = Uri::from(path_and_query.clone());
        *up.version_mut() = Version::HTTP_11;
        *up.headers_mut() = headers.clone();

        let sent =
            crate::upstream::send(backend.target(listener.proto == "https"), up, &active.pool);
        let result = match active.settings.response_timeout {
            Some(limit) => match tokio::time::timeout(limit, sent).await {
                Ok(r) => r,
                Err(_) => {
                    state
                        .metrics
                        .upstream_errors
                        .get_or_create(&error_labels(key, "timeout"))
                        .inc();
                    tracing::warn!(member = %backend.id, limit_ms = limit.as_millis() as u64, "member did not answer in time");
                    return books.local(text(
                        StatusCode::GATEWAY_TIMEOUT,
                        "the member did not answer in time",
                    ));
                }
            },
            None => sent.await,
        };
        match result {
            Ok((resp, lease)) => {
                backend.succeeded();
                break (resp, lease, backend, guard);
            }
            Err(e) => {
                drop(guard);
                if body.as_ref().is_some_and(|b| b.client_failed()) {
                    return books.local(text(
                        StatusCode::BAD_REQUEST,
                        "bad request: the request body is malformed or was cut off",
                    ));
                }
                let connect = matches!(e, SendError::Connect { .. });
                let kind = if connect { "connect" } else { "reset" };
                state
                    .metrics
                    .upstream_errors
                    .get_or_create(&error_labels(key, kind))
                    .inc();
                let period = backend.eject(
                    Instant::now(),
                    active.settings.eject_base,
                    active.settings.eject_max,
                );
                state
                    .metrics
                    .ejections
                    .get_or_create(&pool_labels(key))
                    .inc();
                let started = body.as_ref().is_some_and(|b| b.started());
                let nothing_sent = connect && !started;
                let replayable = idempotent(&parts.method) && !started;
                tried.push(backend.clone());
                let retry = active.fail_over
                    && tried.len() <= active.settings.max_retries as usize
                    && (nothing_sent || replayable);
                tracing::warn!(
                    member = %backend.id, addr = %backend.addr, kind, error = %error_chain(&e),
                    ejected_ms = period.as_millis() as u64, retry,
                    "request to member failed; member ejected"
                );
                if retry {
                    state.metrics.retries.get_or_create(&pool_labels(key)).inc();
                    continue;
                }
                return books.local(text(StatusCode::BAD_GATEWAY, &none_answered_message(key)));
            }
        }
    };

    let status = resp.status();
    books.metrics.answered(status.as_u16());
    books.metrics.observe_latency(start.elapsed().as_secs_f64());

    let mut resp = resp;
    let upstream_upgrade = (status == StatusCode::SWITCHING_PROTOCOLS && client_upgrade.is_some())
        .then(|| hyper::upgrade::on(&mut resp));
    let (mut rparts, rbody) = resp.into_parts();
    let rec = books.rec.take();
    if let Some(upstream_side) = upstream_upgrade {
        if let Some(client_side) = client_upgrade {
            let entry = rec.map(|r| r.entry(101, 0, &backend.id, start));
            let access = state.access.load_full();
            tokio::spawn(async move {
                let _guard = guard;
                match futures::future::try_join(client_side, upstream_side).await {
                    Ok((c, u)) => {
                        let (mut c, mut u) = (TokioIo::new(c), TokioIo::new(u));
                        if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut u).await {
                            tracing::debug!(error = %e, "upgraded connection ended with an error");
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "upgrade failed"),
                }
                if let Some(entry) = entry {
                    access.log(&entry);
                }
            });
            return Response::from_parts(
                rparts,
                Empty::<Bytes>::new()
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            );
        }
    }
    remove_hop_by_hop(&mut rparts.headers);
    if service.affinity.enabled {
        let secure = if listener.proto == "https" {
            "; Secure"
        } else {
            ""
        };
        let cookie = format!(
            "{AFFINITY_COOKIE}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
            backend.token,
            service.affinity.timeout.as_secs().max(1)
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            rparts.headers.append(header::SET_COOKIE, v);
        }
    }
    let code = status.as_u16();
    let access = rec.is_some().then(|| state.access.load_full());
    let body = Tracked::new(rbody, move |bytes, complete| {
        drop(guard);
        if complete {
            lease.release();
        }
        if let (Some(rec), Some(access)) = (rec, access) {
            access.log(&rec.entry(code, bytes, &backend.id, start));
        }
    });
    Response::from_parts(rparts, body.boxed_unsync())
}

pub(crate) fn error_labels(key: &crate::routes::PoolKey, kind: &str) -> UpstreamErrorLabels {
    let p = pool_labels(key);
    UpstreamErrorLabels {
        domain: p.domain,
        sub_domain: p.sub_domain,
        kind: kind.to_string(),
    }
}

/// An error with its causes, for the log.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
