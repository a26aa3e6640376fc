//! The admin API's routes: sign in, deploy, list, undeploy, history,
//! rollback, rollout, members. JSON bodies from [`wharf_proto::api`].

use super::auth::{Caller, Denied};
use super::ops::{self, For};
use super::{ApiError, PeerAddr};
use crate::Node;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::{header, request::Parts, HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::sync::Arc;
use wharf_proto::api::{
    AppList, ChangeResponse, LoginRequest, LoginResponse, MemberView, RevisionInfo, Rollout,
};
use wharf_proto::SUPER_TENANT;

type Shared = State<Arc<Node>>;

pub(crate) fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/login", post(login))
        .route("/api/v1/logout", post(logout))
        .route("/api/v1/apps", get(list_apps).post(deploy).delete(undeploy))
        .route("/api/v1/revisions", get(history))
        .route("/api/v1/revisions/{revision}/rollback", post(rollback))
        .route("/api/v1/revisions/{revision}/rollout", get(rollout_of))
        .route("/api/v1/members", get(members))
        .merge(super::tenants_api::routes())
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no such admin API route; see /api/v1/openapi.json",
            )
        })
        .with_state(node)
}

/// The OpenAPI document, served as it is written.
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> ([(header::HeaderName, &'static str); 1], &'static str) {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

fn peer(parts: &Parts) -> std::net::IpAddr {
    parts
        .extensions
        .get::<PeerAddr>()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |p| p.0.ip())
}

impl From<Denied> for ApiError {
    fn from(d: Denied) -> ApiError {
        match d {
            Denied::Unauthorized(m) => ApiError::new(StatusCode::UNAUTHORIZED, m),
            Denied::TooManyAttempts(wait) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "too many failed sign-ins; try again in {} s",
                    wait.as_secs().max(1)
                ),
            ),
        }
    }
}

impl FromRequestParts<Arc<Node>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, node: &Arc<Node>) -> Result<Caller, ApiError> {
        let auth = node
            .admin
            .as_ref()
            .ok_or_else(|| ApiError::new(StatusCode::FORBIDDEN, "this node has no admin API"))?;
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        Ok(auth.authorize(header, peer(parts)).await?)
    }
}

/// The tenant a call acts for: the super admin's own, or the one named in
/// `?tenant=`; a tenant admin's only ever their own (asking for another is
/// refused and logged).
pub(crate) fn tenant_of(
    node: &Node,
    caller: &Caller,
    asked: Option<&str>,
) -> Result<For, ApiError> {
    let domain = match (&caller.tenant, asked) {
        (None, None) => {
            return Ok(For {
                id: SUPER_TENANT,
                name: None,
            })
        }
        (None, Some(d)) => d,
        (Some(own), None) => own.as_str(),
        (Some(own), Some(d)) if d == own => own.as_str(),
        (Some(own), Some(d)) => {
            tracing::warn!(user = %caller.user, tenant = %own, asked = %d, "denied: a tenant admin asked for another tenant");
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("{} administers tenant {own} only", caller.user),
            ));
        }
    };
    if let Some(t) = node.tenants.load().by_domain(domain) {
        return Ok(For {
            id: t.id(),
            name: Some(domain.to_string()),
        });
    }
    let inactive = node
        .tenant_store
        .as_ref()
        .and_then(|s| s.get(domain))
        .is_some_and(|t| !t.active);
    Err(if inactive {
        ApiError::new(
            StatusCode::FORBIDDEN,
            format!("tenant {domain} is deactivated"),
        )
    } else {
        ApiError::new(StatusCode::NOT_FOUND, format!("no tenant {domain}"))
    })
}

/// `?tenant=<domain>`, for routes that take nothing else.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantQuery {
    tenant: Option<String>,
}

async fn login(
    State(node): Shared,
    parts: Parts,
    body: Bytes,
) -> Result<Json<LoginResponse>, ApiError> {
    let auth = node
        .admin
        .as_ref()
        .ok_or_else(|| ApiError::new(StatusCode::FORBIDDEN, "this node has no admin API"))?;
    let req: LoginRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("expected {{\"user\": \"…\", \"password\": \"…\"}}: {e}"),
        )
    })?;
    let (caller, token) = auth.login(&req.user, &req.password, peer(&parts)).await?;
    // A deactivated (or deleted) tenant's admin does not get in.
    if caller.tenant.is_some() {
        if let Err(e) = tenant_of(&node, &caller, None) {
            auth.logout(&token);
            tracing::warn!(user = %caller.user, "refused the login of an admin of an inactive tenant");
            return Err(e);
        }
    }
    Ok(Json(LoginResponse {
        token,
        user: caller.user,
        tenant: caller.tenant,
        expires_in_s: auth.ttl().as_secs(),
    }))
}

async fn logout(State(node): Shared, headers: HeaderMap, _caller: Caller) -> StatusCode {
    if let (Some(auth), Some(token)) = (
        node.admin.as_ref(),
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ")),
    ) {
        auth.logout(token.trim());
    }
    StatusCode::NO_CONTENT
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployQuery {
    tenant: Option<String>,
    context: Option<String>,
    #[serde(default = "yes")]
    wait: bool,
    memory_limit_mb: Option<u64>,
    request_timeout_ms: Option<u64>,
    max_instances: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeQuery {
    tenant: Option<String>,
    context: Option<String>,
    #[serde(default = "yes")]
    wait: bool,
}

fn yes() -> bool {
    true
}

pub(crate) fn query<T>(
    q: Result<Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, ApiError> {
    q.map(|Query(t)| t)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))
}

fn context_param(c: Option<String>) -> Result<String, ApiError> {
    c.ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "the context query parameter is required, e.g. ?context=/hello",
        )
    })
}

/// The uploaded component, refused when larger than `max_upload`.
async fn read_upload(node: &Node, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let max = node.config.admin.max_upload;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the component is larger than the {} MiB this manager accepts (admin.max_upload_mb)", max / (1024 * 1024)),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, max as usize)
        .await
        .map_err(|e| {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(s) = source {
                if s.is::<http_body_util::LengthLimitError>() {
                    return too_large();
                }
                source = s.source();
            }
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("cannot read the upload: {e}"),
            )
        })?;
    if bytes.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the request body is empty: send the component (.wasm) as the body",
        ));
    }
    Ok(bytes)
}

async fn deploy(
    State(node): Shared,
    caller: Caller,
    q: Result<Query<DeployQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<ChangeResponse>), ApiError> {
    let q = query(q)?;
    let target = tenant_of(&node, &caller, q.tenant.as_deref())?;
    let context = context_param(q.context.clone())?;
    ops::check_context(&context)?;
    let limits = ops::check_limits(
        &node,
        q.memory_limit_mb,
        q.request_timeout_ms,
        q.max_instances,
    )?;
    let bytes = read_upload(&node, &headers, body).await?;
    let (status, r) = ops::deploy(&node, &caller, target, context, limits, bytes, q.wait).await?;
    Ok((status, Json(r)))
}

async fn undeploy(
    State(node): Shared,
    caller: Caller,
    q: Result<Query<ChangeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<(StatusCode, Json<ChangeResponse>), ApiError> {
    let q = query(q)?;
    let target = tenant_of(&node, &caller, q.tenant.as_deref())?;
    let context = context_param(q.context.clone())?;
    let (status, r) = ops::undeploy(&node, &caller, target, context, q.wait).await?;
    Ok((status, Json(r)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitQuery {
    tenant: Option<String>,
    #[serde(default = "yes")]
    wait: bool,
}

fn revision_param(revision: &str) -> Result<u64, ApiError> {
    revision.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{revision:?} is not a revision number"),
        )
    })
}

async fn rollback(
    State(node): Shared,
    caller: Caller,
    Path(revision): Path<String>,
    q: Result<Query<WaitQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<(StatusCode, Json<ChangeResponse>), ApiError> {
    let q = query(q)?;
    let target = tenant_of(&node, &caller, q.tenant.as_deref())?;
    let to = revision_param(&revision)?;
    let (status, r) = ops::rollback(&node, &caller, target, to, q.wait).await?;
    Ok((status, Json(r)))
}

async fn list_apps(
    State(node): Shared,
    caller: Caller,
    q: Result<Query<TenantQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AppList>, ApiError> {
    let q = query(q)?;
    let target = tenant_of(&node, &caller, q.tenant.as_deref())?;
    Ok(Json(ops::app_list(&node, &target).await?))
}

async fn history(
    State(node): Shared,
    caller: Caller,
    q: Result<Query<TenantQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<RevisionInfo>>, ApiError> {
    let q = query(q)?;
    let target = tenant_of(&node, &caller, q.tenant.as_deref())?;
    Ok(Json(ops::history(&node, &target).await?))
}

async fn rollout_of(
    State(node): Shared,
    caller: Caller,
    Path(revision): Path<String>,
    q: Result<Query<TenantQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Rollout>, ApiError> {
    let q = query(q)?;
    let target = tenant_of(&node, &caller, q.tenant.as_deref())?;
    let n = revision_param(&revision)?;
    Ok(Json(ops::rollout_of(&node, &target, n)))
}

async fn members(State(node): Shared, _caller: Caller) -> Json<Vec<MemberView>> {
    Json(ops::members(&node))
}
