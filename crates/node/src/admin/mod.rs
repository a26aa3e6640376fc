//! The admin API of a management node (`/api/v1`, JSON over HTTPS): the
//! only way applications get into the repository. Workers answer it with
//! 403; plain HTTP is refused, so credentials never cross the wire in
//! clear.

pub(crate) mod api;
pub mod auth;
pub(crate) mod ops;
mod private_file;
mod rollout;
pub mod tenant_store;
mod tenants_api;
pub mod users;

use crate::service::full_response;
use crate::Node;
use axum::response::IntoResponse;
use http::{Request, Response, StatusCode};
use std::net::SocketAddr;
use std::sync::Arc;
use tower::ServiceExt;
use wharf_proto::api::ErrorBody;
use wharf_runtime::{ResponseBody, Scheme};

pub use api::OPENAPI;

/// The peer of the connection a request came on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerAddr(pub SocketAddr);

/// An admin API error: a status and a sentence for the caller. Server
/// errors are logged with their cause; the caller gets no internals.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub revision: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            revision: None,
        }
    }

    pub fn internal(what: &str, cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "{what}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{what}; the manager's log has the details"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        let mut resp = (
            self.status,
            axum::Json(ErrorBody {
                error: self.message,
                revision: self.revision,
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer realm=\"wharf\""),
            );
        }
        resp
    }
}

fn json_error(status: StatusCode, message: String) -> Response<ResponseBody> {
    let body = serde_json::to_vec(&ErrorBody {
        error: message,
        revision: None,
    })
    .unwrap_or_default();
    full_response(status, "application/json", body)
}

/// Runs a request through the admin API from inside this node (the
/// console), authenticated like any other.
pub(crate) async fn call(
    node: Arc<Node>,
    mut req: http::Request<axum::body::Body>,
) -> axum::response::Response {
    req.extensions_mut()
        .insert(PeerAddr(SocketAddr::from(([127, 0, 0, 1], 0))));
    match api::router(node).oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

/// Serves one request under `/api`.
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
    if node.config.server.worker_node {
        return json_error(
            StatusCode::FORBIDDEN,
            "this is a worker node: it accepts no deployments and has no admin API; \
             use the management node"
                .into(),
        );
    }
    if node.admin.is_none() {
        return json_error(StatusCode::FORBIDDEN, "this node has no admin API".into());
    }
    if !matches!(scheme, Scheme::Https) {
        return json_error(
            StatusCode::FORBIDDEN,
            format!(
                "the admin API is served over HTTPS only: {}/api/v1",
                node.urls.mgt_https_base()
            ),
        );
    }
    req.extensions_mut().insert(PeerAddr(peer));
    serve_router(api::router(node), req).await
}

/// Runs `req` through an axum `router` and hands back the node's body type.
pub(crate) async fn serve_router<B>(router: axum::Router, req: Request<B>) -> Response<ResponseBody>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let resp = match router.oneshot(req.map(axum::body::Body::new)).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    resp.map(|b| {
        use http_body_util::BodyExt;
        b.map_err(|e| Box::new(e) as wharf_runtime::BoxError)
            .boxed_unsync()
    })
}
