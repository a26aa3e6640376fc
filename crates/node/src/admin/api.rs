//! The admin API's routes: sign in, deploy, list, undeploy, history,
//! rollback, rollout, members. JSON bodies from [`wharf_proto::api`].

use super::auth::{Caller, Denied};
use super::{rollout, ApiError, PeerAddr};
use crate::sync::{manager::serve_head, runtime_limits, Place};
use crate::Node;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::{header, request::Parts, HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use wharf_cluster::MemberState;
use wharf_deploy::{Apps, CommitInfo, Committed, RepoError, Repository};
use wharf_proto::api::{
    AppInfo, AppList, ChangeResponse, LoginRequest, LoginResponse, MemberView, RevisionInfo,
    WorkerApp,
};
use wharf_proto::context::validate_deploy_context;
use wharf_proto::{AppEntry, AppLimits, Manifest, TenantId, SUPER_TENANT};

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
) -> Result<(TenantId, Option<String>), ApiError> {
    let domain = match (&caller.tenant, asked) {
        (None, None) => return Ok((SUPER_TENANT, None)),
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
        return Ok((t.id(), Some(domain.to_string())));
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

fn repository(node: &Node) -> Result<&Repository, ApiError> {
    node.repository.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "this manager's deployment synchronizer is disabled (deployment_synchronizer.enabled = false): \
             it deploys from its hot-deployment directory only",
        )
    })
}

fn writable(node: &Node) -> Result<&Repository, ApiError> {
    let repo = repository(node)?;
    if !node.config.deployment_synchronizer.auto_commit {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "deployment_synchronizer.auto_commit is false on this manager: it commits nothing",
        ));
    }
    Ok(repo)
}

fn repo_error(e: RepoError) -> ApiError {
    match e {
        RepoError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, m),
        RepoError::NoSuchRevision(n) => ApiError::new(
            StatusCode::NOT_FOUND,
            format!("revision {n} does not exist"),
        ),
        RepoError::Unsupported(m) | RepoError::Refused(m) => ApiError::new(StatusCode::CONFLICT, m),
        e => ApiError::internal("the repository failed", e),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
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
    let c = c.ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "the context query parameter is required, e.g. ?context=/hello",
        )
    })?;
    validate_deploy_context(&c).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    Ok(c)
}

/// The limits asked for, refused when above what this node allows.
fn limits(node: &Node, q: &DeployQuery) -> Result<AppLimits, ApiError> {
    let rc = &node.config.runtime;
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, m);
    let node_mb = rc.memory_limit / (1024 * 1024);
    if let Some(mb) = q.memory_limit_mb {
        if mb == 0 || mb > node_mb {
            return Err(bad(format!(
                "memory_limit_mb {mb} must be between 1 and this cluster's {node_mb}"
            )));
        }
    }
    let node_ms = rc.request_timeout.as_millis() as u64;
    if let Some(ms) = q.request_timeout_ms {
        if ms == 0 || ms > node_ms {
            return Err(bad(format!(
                "request_timeout_ms {ms} must be between 1 and this cluster's {node_ms}"
            )));
        }
    }
    if let Some(n) = q.max_instances {
        if n == 0 || n > rc.max_instances_per_app {
            return Err(bad(format!(
                "max_instances {n} must be between 1 and this cluster's {}",
                rc.max_instances_per_app
            )));
        }
    }
    Ok(AppLimits {
        memory_limit_mb: q.memory_limit_mb,
        request_timeout_ms: q.request_timeout_ms,
        max_instances: q.max_instances,
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
    let (tenant, tenant_name) = tenant_of(&node, &caller, q.tenant.as_deref())?;
    let repo = writable(&node)?.clone();
    let context = context_param(q.context.clone())?;
    let limits = limits(&node, &q)?;
    let bytes = read_upload(&node, &headers, body).await?;

    // Validate by compiling, as every worker will: a bad component is
    // refused here and nothing is committed.
    let compiler = node.clone();
    let place = Place::of(&node, tenant).map_err(|e| ApiError::new(StatusCode::CONFLICT, e))?;
    let (name, ctx, rl, b) = (
        place.app_name(&context),
        place.context(&context),
        runtime_limits(&limits),
        bytes.clone(),
    );
    let app =
        tokio::task::spawn_blocking(move || compiler.runtime.load_with_limits(&name, &ctx, &b, rl))
            .await
            .map_err(|e| ApiError::internal("the compiler task failed", e))?
            .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let app = Arc::new(app);

    let sha256 = repo
        .put_blob(tenant, bytes.to_vec())
        .await
        .map_err(repo_error)?;
    let now = now_ms();
    let entry = AppEntry {
        sha256,
        size: bytes.len() as u64,
        deployed_at_ms: now,
        deployed_by: caller.user.clone(),
        limits,
    };
    let ctx = context.clone();
    let max_apps = node
        .tenants
        .load()
        .by_id(tenant)
        .map(|t| t.settings.limits.max_apps as usize);
    let who = tenant_name.clone();
    let committed = repo
        .commit(
            tenant,
            CommitInfo {
                author: caller.user.clone(),
                message: format!("deploy {context}"),
                created_at_ms: now,
            },
            move |apps: &Apps| {
                let mut apps = apps.clone();
                let same = apps
                    .get(&ctx)
                    .is_some_and(|e| e.sha256 == entry.sha256 && e.limits == entry.limits);
                if let Some(max) = max_apps.filter(|m| !apps.contains_key(&ctx) && apps.len() >= *m)
                {
                    return Err(RepoError::Refused(format!(
                        "tenant {} may have at most {max} applications; undeploy one first",
                        who.as_deref().unwrap_or("-")
                    )));
                }
                if !same {
                    apps.insert(ctx.clone(), entry.clone());
                }
                Ok(apps)
            },
        )
        .await
        .map_err(repo_error)?;
    tracing::info!(user = %caller.user, tenant, context = %context, sha256 = %app.sha256, revision = committed.manifest.revision, changed = committed.changed, "deploy");
    let message = if committed.changed {
        format!(
            "deployed {context} as revision {}",
            committed.manifest.revision
        )
    } else {
        format!(
            "{context} already serves this component (revision {})",
            committed.manifest.revision
        )
    };
    finish(
        &node,
        &repo,
        tenant,
        tenant_name,
        committed,
        vec![app],
        q.wait,
        message,
    )
    .await
}

async fn undeploy(
    State(node): Shared,
    caller: Caller,
    q: Result<Query<ChangeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<(StatusCode, Json<ChangeResponse>), ApiError> {
    let q = query(q)?;
    let (tenant, tenant_name) = tenant_of(&node, &caller, q.tenant.as_deref())?;
    let repo = writable(&node)?.clone();
    let context = q.context.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "the context query parameter is required, e.g. ?context=/hello",
        )
    })?;
    let ctx = context.clone();
    let committed = repo
        .commit(
            tenant,
            CommitInfo {
                author: caller.user.clone(),
                message: format!("undeploy {context}"),
                created_at_ms: now_ms(),
            },
            move |apps: &Apps| {
                let mut apps = apps.clone();
                apps.remove(&ctx).ok_or_else(|| {
                    RepoError::NotFound(format!("no application is deployed at {ctx}"))
                })?;
                Ok(apps)
            },
        )
        .await
        .map_err(repo_error)?;
    tracing::info!(user = %caller.user, tenant, context = %context, revision = committed.manifest.revision, "undeploy");
    let message = format!(
        "undeployed {context} as revision {}",
        committed.manifest.revision
    );
    finish(
        &node,
        &repo,
        tenant,
        tenant_name,
        committed,
        vec![],
        q.wait,
        message,
    )
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitQuery {
    tenant: Option<String>,
    #[serde(default = "yes")]
    wait: bool,
}

async fn rollback(
    State(node): Shared,
    caller: Caller,
    Path(revision): Path<String>,
    q: Result<Query<WaitQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<(StatusCode, Json<ChangeResponse>), ApiError> {
    let q = query(q)?;
    let (tenant, tenant_name) = tenant_of(&node, &caller, q.tenant.as_deref())?;
    let repo = writable(&node)?.clone();
    let target: u64 = revision.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{revision:?} is not a revision number"),
        )
    })?;
    let old = repo.manifest(tenant, target).await.map_err(repo_error)?;
    let apps = old.apps.clone();
    let committed = repo
        .commit(
            tenant,
            CommitInfo {
                author: caller.user.clone(),
                message: format!("rollback to revision {target}"),
                created_at_ms: now_ms(),
            },
            move |_: &Apps| Ok(apps.clone()),
        )
        .await
        .map_err(repo_error)?;
    tracing::info!(user = %caller.user, tenant, to = target, revision = committed.manifest.revision, "rollback");
    let message = if committed.changed {
        format!(
            "rolled back to revision {target} as revision {}",
            committed.manifest.revision
        )
    } else {
        format!(
            "revision {} already has revision {target}'s applications",
            committed.manifest.revision
        )
    };
    finish(
        &node,
        &repo,
        tenant,
        tenant_name,
        committed,
        vec![],
        q.wait,
        message,
    )
    .await
}

/// After a commit: serve it here, announce it, and report the rollout
/// (after waiting for it, when asked).
#[allow(clippy::too_many_arguments)]
async fn finish(
    node: &Arc<Node>,
    repo: &Repository,
    tenant: TenantId,
    tenant_name: Option<String>,
    committed: Committed,
    fresh: Vec<Arc<wharf_runtime::App>>,
    wait: bool,
    message: String,
) -> Result<(StatusCode, Json<ChangeResponse>), ApiError> {
    let revision = committed.manifest.revision;
    if let Err(e) = serve_head(node, repo, tenant, committed.manifest, fresh).await {
        return Err(ApiError::internal(
            "the revision is committed but this manager cannot serve it",
            e,
        ));
    }
    if let Some(cluster) = node.cluster.get() {
        let members = cluster.members();
        if rollout::workers(node, &members).is_empty() {
            return Err(ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: format!(
                    "no worker node is in the cluster yet: revision {revision} is committed, \
                     and the first worker node that joins will serve it"
                ),
                revision: Some(revision),
            });
        }
    }
    let timeout = node.config.admin.rollout_timeout;
    let r = if wait {
        rollout::wait(node, tenant, tenant_name.as_deref(), revision, timeout).await
    } else {
        rollout::now(node, tenant, tenant_name.as_deref(), revision)
    };
    let warning = (wait && !r.complete).then(|| {
        format!(
            "not every worker serves revision {revision} yet (waited {} s); see GET /api/v1/revisions/{revision}/rollout",
            timeout.as_secs()
        )
    });
    let status = if committed.changed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(ChangeResponse {
            revision,
            message,
            rollout: r,
            warning,
        }),
    ))
}

async fn list_apps(
    State(node): Shared,
    caller: Caller,
    q: Result<Query<TenantQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AppList>, ApiError> {
    let q = query(q)?;
    let (tenant, tenant_name) = tenant_of(&node, &caller, q.tenant.as_deref())?;
    let repo = repository(&node)?;
    let head = repo.head(tenant).await.map_err(repo_error)?;
    let revision = head.as_ref().map_or(0, |m| m.revision);
    let r = rollout::now(&node, tenant, tenant_name.as_deref(), revision);
    // The manifests the workers serve, to tell whether each app is among them.
    let mut served: BTreeMap<u64, Option<Manifest>> = BTreeMap::new();
    for w in &r.workers {
        if let std::collections::btree_map::Entry::Vacant(slot) = served.entry(w.revision) {
            let m = if Some(w.revision) == head.as_ref().map(|h| h.revision) {
                head.clone()
            } else if w.revision == 0 {
                None
            } else {
                repo.manifest(tenant, w.revision).await.ok()
            };
            slot.insert(m);
        }
    }
    let apps = head
        .iter()
        .flat_map(|m| m.apps.iter())
        .map(|(context, e)| AppInfo {
            context: context.clone(),
            sha256: e.sha256.clone(),
            size: e.size,
            deployed_at_ms: e.deployed_at_ms,
            deployed_by: e.deployed_by.clone(),
            workers: r
                .workers
                .iter()
                .map(|w| WorkerApp {
                    node_id: w.node_id.clone(),
                    revision: w.revision,
                    serving: served
                        .get(&w.revision)
                        .and_then(|m| m.as_ref())
                        .and_then(|m| m.apps.get(context))
                        .is_some_and(|a| a.sha256 == e.sha256),
                })
                .collect(),
        })
        .collect();
    Ok(Json(AppList {
        tenant: tenant_name,
        revision,
        apps,
        rollout: r,
    }))
}

async fn history(
    State(node): Shared,
    caller: Caller,
    q: Result<Query<TenantQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<RevisionInfo>>, ApiError> {
    let q = query(q)?;
    let (tenant, _) = tenant_of(&node, &caller, q.tenant.as_deref())?;
    let repo = repository(&node)?;
    let all = repo.history(tenant).await.map_err(repo_error)?;
    let current = all.first().map(|m| m.revision);
    Ok(Json(
        all.into_iter()
            .map(|m| RevisionInfo {
                current: Some(m.revision) == current,
                revision: m.revision,
                parent: m.parent,
                created_at_ms: m.created_at_ms,
                apps: m
                    .apps
                    .iter()
                    .map(|(c, a)| (c.clone(), a.sha256.clone()))
                    .collect(),
                author: m.author,
                message: m.message,
            })
            .collect(),
    ))
}

async fn rollout_of(
    State(node): Shared,
    caller: Caller,
    Path(revision): Path<String>,
    q: Result<Query<TenantQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<wharf_proto::api::Rollout>, ApiError> {
    let q = query(q)?;
    let (tenant, tenant_name) = tenant_of(&node, &caller, q.tenant.as_deref())?;
    let n: u64 = revision.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{revision:?} is not a revision number"),
        )
    })?;
    Ok(Json(rollout::now(&node, tenant, tenant_name.as_deref(), n)))
}

async fn members(State(node): Shared, _caller: Caller) -> Json<Vec<MemberView>> {
    let Some(cluster) = node.cluster.get() else {
        return Json(vec![]);
    };
    let heard = cluster.last_heard();
    Json(
        cluster
            .members()
            .iter()
            .filter(|m| m.info.state != MemberState::Left)
            .map(|m| MemberView {
                node_id: m.node_id.clone(),
                role: m.info.role.to_string(),
                domain: m.info.domain.clone(),
                sub_domain: m.info.sub_domain.clone(),
                state: m.info.state.to_string(),
                address: m.gossip_addr.to_string(),
                revisions: m
                    .info
                    .revisions
                    .iter()
                    .map(|(t, r)| (t.to_string(), r.number))
                    .collect(),
                last_heard_ms: heard.get(&m.node_id).map(|d| d.as_millis() as u64),
            })
            .collect(),
    )
}
