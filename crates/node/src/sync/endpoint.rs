//! The manager's builtin repository as workers read it, on its HTTPS
//! listener: `GET /_wharf/sync/v1/<tenant>/head`, `…/revisions/<n>` and
//! `…/blobs/<sha256>`, for members presenting the token derived from the
//! cluster secret. Read-only: nothing here writes.

use crate::service::{error_response, full_response};
use crate::Node;
use http::{header, Method, Request, Response, StatusCode};
use std::sync::Arc;
use wharf_deploy::remote::SYNC_PREFIX;
use wharf_deploy::{RepoError, Repository};
use wharf_proto::TenantId;
use wharf_runtime::{ResponseBody, Scheme};

/// Compares in time independent of where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) async fn handle<B>(
    node: &Arc<Node>,
    req: &Request<B>,
    scheme: &Scheme,
) -> Response<ResponseBody> {
    let Some(Repository::Builtin(_)) = node.repository.as_ref() else {
        return error_response(
            StatusCode::NOT_FOUND,
            "this node serves no builtin repository",
        );
    };
    if !matches!(scheme, Scheme::Https) {
        return error_response(StatusCode::FORBIDDEN, "use HTTPS");
    }
    if req.method() != Method::GET {
        return error_response(StatusCode::METHOD_NOT_ALLOWED, "use GET");
    }
    if let Some(token) = &node.member_token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !same(given.as_bytes(), token.as_bytes()) {
            tracing::warn!(path = %req.uri().path(), "refused a repository read without the cluster's token");
            return error_response(StatusCode::UNAUTHORIZED, "cluster members only");
        }
    }
    let repo = node.repository.clone().expect("checked above");
    let rest = req.uri().path().strip_prefix(SYNC_PREFIX).unwrap_or("");
    let parts: Vec<&str> = rest.split('/').collect();
    let Some(tenant) = parts.first().and_then(|t| t.parse::<TenantId>().ok()) else {
        return error_response(StatusCode::NOT_FOUND, "no such tenant");
    };
    let result = match parts[1..] {
        ["head"] => repo.head(tenant).await.map(|m| m.map(|m| m.to_json())),
        ["revisions", n] => match n.parse() {
            Ok(n) => match repo.manifest(tenant, n).await {
                Ok(m) => Ok(Some(m.to_json())),
                Err(RepoError::NoSuchRevision(_)) => Ok(None),
                Err(e) => Err(e),
            },
            Err(_) => Ok(None),
        },
        ["blobs", sha] => match repo.blob(tenant, sha).await {
            Ok(b) => Ok(Some(b)),
            Err(RepoError::BadHash(_)) => Ok(None),
            Err(RepoError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(e) => Err(e),
        },
        _ => Ok(None),
    };
    match result {
        Ok(Some(body)) => full_response(StatusCode::OK, "application/octet-stream", body),
        Ok(None) => error_response(StatusCode::NOT_FOUND, "not in the repository"),
        Err(e) => {
            tracing::error!(error = %e, path = %req.uri().path(), "cannot read the repository for a worker");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot read the repository",
            )
        }
    }
}
