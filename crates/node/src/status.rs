//! The status listener: liveness, readiness and Prometheus metrics.
//! It binds to 127.0.0.1 by default: metrics name every application.

use crate::service::{error_response, full_response};
use crate::{Node, NodeState};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use std::sync::Arc;
use wharf_runtime::ResponseBody;

pub(crate) async fn handle(node: Arc<Node>, req: Request<Incoming>) -> Response<ResponseBody> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return error_response(StatusCode::METHOD_NOT_ALLOWED, "use GET");
    }
    match req.uri().path() {
        "/health/live" => error_response(StatusCode::OK, "live"),
        "/health/ready" => match node.state() {
            NodeState::Ready => error_response(StatusCode::OK, "ready"),
            s => error_response(StatusCode::SERVICE_UNAVAILABLE, s.as_str()),
        },
        "/metrics" => {
            let mut text = String::new();
            if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &node.registry) {
                tracing::error!(error = %e, "cannot encode metrics");
                return error_response(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics");
            }
            full_response(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                text,
            )
        }
        "/cluster/members" => match node.cluster.get() {
            Some(cluster) => {
                let heard = cluster.last_heard();
                let members: Vec<serde_json::Value> = cluster
                    .members()
                    .iter()
                    .map(|m| {
                        let mut v = serde_json::to_value(m).unwrap_or_default();
                        if let Some(ago) = heard.get(&m.node_id) {
                            v["last_heard_ms"] = serde_json::json!(ago.as_millis() as u64);
                        }
                        v
                    })
                    .collect();
                let body = serde_json::to_vec_pretty(&members).unwrap_or_default();
                full_response(StatusCode::OK, "application/json", body)
            }
            None => error_response(
                StatusCode::NOT_FOUND,
                "clustering is not enabled on this node",
            ),
        },
        _ => error_response(
            StatusCode::NOT_FOUND,
            "try /health/live, /health/ready, /metrics or /cluster/members",
        ),
    }
}
