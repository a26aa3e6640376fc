//! The request path: route, pick a member, forward, retry, stream back.

use crate::access::Entry;
use crate::body::{ProxyBody, Reclaim, Tracked};
use crate::headers::{add_forwarded, check_framing, remove_hop_by_hop, upgrade_of, ClientSide};
use crate::metrics::{pool_labels, RequestLabels, ServiceLabel, UpstreamErrorLabels};
use crate::pool::Backend;
use crate::routes::NoRoute;
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

/// What is known about a request for its log line and metrics.
struct Record {
    peer: SocketAddr,
    time: SystemTime,
    start: Instant,
    method: String,
    target: String,
    version: Version,
    referer: String,
    user_agent: String,
    host: String,
    service: String,
}

impl Record {
    fn entry(&self, status: u16, bytes: u64, member: &str) -> Entry {
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
            duration: self.start.elapsed(),
        }
    }
}

/// Answers without a member: counts and logs it.
fn local(state: &State, rec: &Record, resp: Response<ProxyBody>) -> Response<ProxyBody> {
    let status = resp.status().as_u16();
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            service: rec.service.clone(),
            status,
        })
        .inc();
    let bytes = resp.body().size_hint().exact().unwrap_or(0);
    state.access.load().log(&rec.entry(status, bytes, "-"));
    resp
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
    let header_str = |name: header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let mut rec = Record {
        peer,
        time: SystemTime::now(),
        start: Instant::now(),
        method: req.method().to_string(),
        target: req
            .uri()
            .path_and_query()
            .map_or("/".to_string(), |p| p.to_string()),
        version: req.version(),
        referer: header_str(header::REFERER),
        user_agent: header_str(header::USER_AGENT),
        host: host.clone(),
        service: "-".to_string(),
    };

    if let Err(bad) = check_framing(req.headers()) {
        tracing::warn!(%peer, reason = bad.0, "refused a request with ambiguous framing");
        let mut r = text(StatusCode::BAD_REQUEST, &format!("bad request: {}", bad.0));
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return local(&state, &rec, r);
    }
    if host.is_empty() {
        return local(
            &state,
            &rec,
            text(StatusCode::BAD_REQUEST, "bad request: no Host header"),
        );
    }

    let active = state.active.load_full();
    let path = req.uri().path().to_string();
    let routed = match active.routes.route(&host, &path, state.tenants.as_ref()) {
        Ok(r) => r,
        Err(NoRoute::UnknownHost(h)) => {
            return local(
                &state,
                &rec,
                text(
                    StatusCode::NOT_FOUND,
                    &format!("no service is configured for host {h}"),
                ),
            )
        }
        Err(NoRoute::TenantOutOfRange(t)) => {
            return local(
                &state,
                &rec,
                text(
                    StatusCode::NOT_FOUND,
                    &format!("no cluster serves tenant {t}"),
                ),
            )
        }
    };
    let service = routed.route.service.clone();
    rec.service = service.name.clone();
    let key = routed.target.pool.clone();
    let pool = state.pools.load().get(&key).cloned();
    let no_member = || {
        let mut r = text(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("no live member in {key}; try again shortly"),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        r
    };
    let Some(pool) = pool.filter(|p| !p.backends.is_empty()) else {
        return local(&state, &rec, no_member());
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
            peer,
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
        .map_or("/", |p| p.as_str())
        .to_string();
    let labels = pool_labels(&key);

    let mut tried: Vec<Arc<Backend>> = vec![];
    let (resp, backend, guard) = loop {
        let now = Instant::now();
        let Some(backend) = pool.pick(service.algorithm, affinity.as_deref(), &tried, now) else {
            if tried.is_empty() {
                return local(&state, &rec, no_member());
            }
            return local(
                &state,
                &rec,
                text(
                    StatusCode::BAD_GATEWAY,
                    &format!("no member of {key} answered"),
                ),
            );
        };
        let guard = backend.start();
        let uri: Uri = match format!("http://{}{}", backend.addr, path_and_query).parse() {
            Ok(u) => u,
            Err(_) => {
                tracing::error!(member = %backend.id, addr = %backend.addr, "member address is not usable in a URL");
                tried.push(backend);
                continue;
            }
        };
        let mut up = Request::new(match &body {
            Some(b) => b.attempt(),
            None => Empty::<Bytes>::new()
                .map_err(|never| match never {})
                .boxed_unsync(),
        });
        *up.method_mut() = parts.method.clone();
        *up.uri_mut() = uri;
        *up.version_mut() = Version::HTTP_11;
        *up.headers_mut() = headers.clone();

        let sent = active.client.request(up);
        let result = match active.settings.response_timeout {
            Some(limit) => match tokio::time::timeout(limit, sent).await {
                Ok(r) => r,
                Err(_) => {
                    state
                        .metrics
                        .upstream_errors
                        .get_or_create(&error_labels(&labels, "timeout"))
                        .inc();
                    tracing::warn!(member = %backend.id, limit_ms = limit.as_millis() as u64, "member did not answer in time");
                    return local(
                        &state,
                        &rec,
                        text(
                            StatusCode::GATEWAY_TIMEOUT,
                            "the member did not answer in time",
                        ),
                    );
                }
            },
            None => sent.await,
        };
        match result {
            Ok(resp) => {
                backend.succeeded();
                break (resp, backend, guard);
            }
            Err(e) => {
                drop(guard);
                if body.as_ref().is_some_and(|b| b.client_failed()) {
                    return local(
                        &state,
                        &rec,
                        text(
                            StatusCode::BAD_REQUEST,
                            "bad request: the request body is malformed or was cut off",
                        ),
                    );
                }
                let kind = if e.is_connect() { "connect" } else { "reset" };
                state
                    .metrics
                    .upstream_errors
                    .get_or_create(&error_labels(&labels, kind))
                    .inc();
                let period = backend.eject(
                    Instant::now(),
                    active.settings.eject_base,
                    active.settings.eject_max,
                );
                state.metrics.ejections.get_or_create(&labels).inc();
                let nothing_sent = e.is_connect() && !body.as_ref().is_some_and(|b| b.started());
                let replayable =
                    idempotent(&parts.method) && !body.as_ref().is_some_and(|b| b.started());
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
                    state.metrics.retries.get_or_create(&labels).inc();
                    continue;
                }
                return local(
                    &state,
                    &rec,
                    text(
                        StatusCode::BAD_GATEWAY,
                        &format!("no member of {key} answered"),
                    ),
                );
            }
        }
    };

    let status = resp.status();
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            service: rec.service.clone(),
            status: status.as_u16(),
        })
        .inc();
    state
        .metrics
        .latency
        .get_or_create(&ServiceLabel {
            service: rec.service.clone(),
        })
        .observe(rec.start.elapsed().as_secs_f64());

    let mut resp = resp;
    let upstream_upgrade = (status == StatusCode::SWITCHING_PROTOCOLS && client_upgrade.is_some())
        .then(|| hyper::upgrade::on(&mut resp));
    let (mut rparts, rbody) = resp.into_parts();
    let member = backend.id.clone();
    if let Some(upstream_side) = upstream_upgrade {
        if let Some(client_side) = client_upgrade {
            let entry = rec.entry(101, 0, &member);
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
                access.log(&entry);
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
    let access = state.access.load_full();
    let code = status.as_u16();
    let body = Tracked::new(rbody, move |bytes| {
        drop(guard);
        access.log(&rec.entry(code, bytes, &member));
    });
    Response::from_parts(rparts, body.boxed_unsync())
}

fn error_labels(p: &crate::metrics::PoolLabels, kind: &str) -> UpstreamErrorLabels {
    UpstreamErrorLabels {
        domain: p.domain.clone(),
        sub_domain: p.sub_domain.clone(),
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
