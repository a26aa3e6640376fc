//! The status listener: liveness, readiness, Prometheus metrics and the
//! routes with their members (`/lb/routes`). Binds 127.0.0.1 by default.

use crate::body::ProxyBody;
use crate::State;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<ProxyBody> {
    let mut r = Response::new(
        Full::new(body.into())
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

const TEXT: &str = "text/plain; charset=utf-8";

pub(crate) async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<ProxyBody> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return respond(StatusCode::METHOD_NOT_ALLOWED, TEXT, "use GET\n");
    }
    match req.uri().path() {
        "/health/live" => respond(StatusCode::OK, TEXT, "live\n"),
        "/health/ready" => {
            if state.draining.load(Ordering::Relaxed) {
                respond(StatusCode::SERVICE_UNAVAILABLE, TEXT, "draining\n")
            } else {
                respond(StatusCode::OK, TEXT, "ready\n")
            }
        }
        "/metrics" => {
            let mut text = String::new();
            if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &state.registry) {
                tracing::error!(error = %e, "cannot encode metrics");
                return respond(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    TEXT,
                    "cannot encode metrics\n",
                );
            }
            respond(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                text,
            )
        }
        "/lb/routes" => {
            let now = Instant::now();
            let pools = state.pools.load();
            let mut keys: Vec<_> = pools.keys().collect();
            keys.sort();
            let out: Vec<serde_json::Value> = keys
                .into_iter()
                .map(|k| {
                    let p = &pools[k];
                    serde_json::json!({
                        "domain": k.domain,
                        "sub_domain": k.sub_domain,
                        "live": p.live(now),
                        "members": p.backends.iter().map(|b| serde_json::json!({
                            "id": b.id,
                            "addr": b.addr,
                            "draining": b.is_draining(),
                            "ejected": b.is_ejected(now),
                            "healthy": b.is_healthy(),
                            "in_flight": b.inflight(),
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            respond(
                StatusCode::OK,
                "application/json",
                serde_json::to_vec_pretty(&out).unwrap_or_default(),
            )
        }
        _ => respond(
            StatusCode::NOT_FOUND,
            TEXT,
            "try /health/live, /health/ready, /metrics or /lb/routes\n",
        ),
    }
}
