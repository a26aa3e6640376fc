//! Tenant management in the admin API (the super admin's only, but for a
//! tenant admin reading and configuring their own tenant): create, list,
//! deactivate, activate, delete, limits and configuration values.

use super::auth::Caller;
use super::tenant_store::{check_env, TenantError, TenantRecord};
use super::users::{generate_password, UsersError};
use super::ApiError;
use crate::Node;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use std::sync::Arc;
use wharf_proto::api::{CreateTenant, CreatedTenant, TenantConfig, TenantInfo, TenantLimitsPatch};

type Shared = State<Arc<Node>>;

pub(crate) fn routes() -> Router<Arc<Node>> {
    Router::new()
        .route("/api/v1/tenants", get(list).post(create))
        .route("/api/v1/tenants/{domain}", get(one).delete(delete))
        .route("/api/v1/tenants/{domain}/activate", post(activate))
        .route("/api/v1/tenants/{domain}/deactivate", post(deactivate))
        .route("/api/v1/tenants/{domain}/limits", put(set_limits))
        .route("/api/v1/tenants/{domain}/config", put(set_config))
}

/// The user name of a tenant's administrator.
pub fn tenant_admin(domain: &str) -> String {
    format!("admin@{domain}")
}

fn super_admin_only(caller: &Caller, what: &str) -> Result<(), ApiError> {
    match &caller.tenant {
        None => Ok(()),
        Some(t) => {
            tracing::warn!(user = %caller.user, tenant = %t, action = what, "denied: tenant management is for the super admin");
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "tenant management is for the super admin only",
            ))
        }
    }
}

fn tenant_error(e: TenantError) -> ApiError {
    match e {
        TenantError::Exists(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        TenantError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
        TenantError::Invalid(_) => ApiError::new(StatusCode::BAD_REQUEST, e.to_string()),
        TenantError::NoIdsLeft(..) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        TenantError::File { .. } => ApiError::internal("cannot save the tenants", e),
    }
}

fn users_error(e: UsersError) -> ApiError {
    match e {
        UsersError::TooShort(_) => ApiError::new(StatusCode::BAD_REQUEST, e.to_string()),
        e => ApiError::internal("cannot save the admin accounts", e),
    }
}

fn store(node: &Node) -> Result<&super::tenant_store::TenantStore, ApiError> {
    node.tenant_store
        .as_ref()
        .ok_or_else(|| ApiError::new(StatusCode::FORBIDDEN, "this node keeps no tenants"))
}

fn info(node: &Node, t: &TenantRecord) -> TenantInfo {
    TenantInfo {
        id: t.id,
        domain: t.domain.clone(),
        active: t.active,
        created_at_ms: t.created_at_ms,
        admin: tenant_admin(&t.domain),
        limits: t.limits.over(node.default_tenant_limits()),
        overrides: t.limits,
        config_keys: t.env.keys().cloned().collect(),
    }
}

/// Serves and publishes the tenants as the store now has them; a tenant
/// no longer active stops being served and announced here (its workers
/// follow), one that is serves its current revision.
async fn republish(node: &Arc<Node>) {
    let before: Vec<_> = node.tenant_ids();
    node.set_tenants(&node.tenant_settings_from_store());
    node.publish_tenants().await;
    let after = node.tenant_ids();
    for gone in before.iter().filter(|t| !after.contains(t)) {
        node.apps.rcu(|s| s.without_tenant(*gone));
        node.withdraw_revision(*gone).await;
    }
    if let Some(repo) = node.repository.clone() {
        for new in after.iter().filter(|t| !before.contains(t)) {
            crate::sync::manager::refresh(node, &repo, *new).await;
        }
    }
}

fn limits_ok(l: &TenantLimitsPatch) -> Result<(), ApiError> {
    let bad = |k: &str| {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{k} must be at least 1"),
        ))
    };
    if l.max_apps == Some(0) {
        return bad("max_apps");
    }
    if l.memory_limit_mb == Some(0) {
        return bad("memory_limit_mb");
    }
    if l.max_instances == Some(0) {
        return bad("max_instances");
    }
    Ok(())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

async fn list(State(node): Shared, caller: Caller) -> Result<Json<Vec<TenantInfo>>, ApiError> {
    super_admin_only(&caller, "list tenants")?;
    let store = store(&node)?;
    Ok(Json(store.list().iter().map(|t| info(&node, t)).collect()))
}

async fn one(
    State(node): Shared,
    caller: Caller,
    Path(domain): Path<String>,
) -> Result<Json<TenantInfo>, ApiError> {
    if caller.tenant.as_deref() != Some(domain.as_str()) {
        super_admin_only(&caller, "read another tenant")?;
    }
    let t = store(&node)?
        .get(&domain)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no tenant {domain}")))?;
    Ok(Json(info(&node, &t)))
}

async fn create(
    State(node): Shared,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<CreatedTenant>), ApiError> {
    super_admin_only(&caller, "create a tenant")?;
    let req: CreateTenant = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("expected {{\"domain\": \"example.com\", \"password\"?: \"…\", \"limits\"?: {{…}}}}: {e}"),
        )
    })?;
    limits_ok(&req.limits)?;
    wharf_proto::validate_tenant_domain(&req.domain)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    // A domain another manager of the cluster serves is taken.
    if let Some(cluster) = node.cluster.get() {
        let taken = cluster.members().iter().any(|m| {
            m.info.role == wharf_cluster::Role::Manager
                && m.info.tenants.contains_key(&req.domain)
                && node.tenants.load().by_domain(&req.domain).is_none()
        });
        if taken {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "tenant {} exists on another manager of the cluster",
                    req.domain
                ),
            ));
        }
    }
    if let Some(p) = &req.password {
        super::users::check_password(p).map_err(users_error)?;
    }
    let store = store(&node)?;
    let range = (node.config.tenants.first_id, node.config.tenants.last_id);
    let record = store
        .create(&req.domain, req.limits, range, now_ms())
        .map_err(tenant_error)?;
    let (password, generated) = match req.password {
        Some(p) => (p, false),
        None => (generate_password(), true),
    };
    let user = tenant_admin(&record.domain);
    let auth = node.admin.as_ref().expect("a manager has accounts");
    if let Err(e) = auth
        .users
        .set_password(&user, Some(&record.domain), &password)
    {
        // No tenant without its administrator.
        let _ = store.delete(&record.domain);
        return Err(users_error(e));
    }
    tracing::info!(user = %caller.user, tenant = %record.domain, id = record.id, "tenant created");
    republish(&node).await;
    Ok((
        StatusCode::CREATED,
        Json(CreatedTenant {
            tenant: info(&node, &record),
            admin_user: user,
            admin_password: generated.then_some(password),
        }),
    ))
}

async fn set_active(
    node: &Arc<Node>,
    caller: &Caller,
    domain: &str,
    active: bool,
) -> Result<Json<TenantInfo>, ApiError> {
    super_admin_only(
        caller,
        if active {
            "activate a tenant"
        } else {
            "deactivate a tenant"
        },
    )?;
    let t = store(node)?
        .update(domain, |t| {
            t.active = active;
            Ok(())
        })
        .map_err(tenant_error)?;
    tracing::info!(user = %caller.user, tenant = %domain, active, "tenant {}", if active { "activated" } else { "deactivated" });
    republish(node).await;
    Ok(Json(info(node, &t)))
}

async fn activate(
    State(node): Shared,
    caller: Caller,
    Path(domain): Path<String>,
) -> Result<Json<TenantInfo>, ApiError> {
    set_active(&node, &caller, &domain, true).await
}

async fn deactivate(
    State(node): Shared,
    caller: Caller,
    Path(domain): Path<String>,
) -> Result<Json<TenantInfo>, ApiError> {
    set_active(&node, &caller, &domain, false).await
}

async fn delete(
    State(node): Shared,
    caller: Caller,
    Path(domain): Path<String>,
) -> Result<StatusCode, ApiError> {
    super_admin_only(&caller, "delete a tenant")?;
    let gone = store(&node)?.delete(&domain).map_err(tenant_error)?;
    if let Some(auth) = node.admin.as_ref() {
        match auth.users.remove(&tenant_admin(&domain)) {
            Ok(()) | Err(UsersError::NoSuchUser(_)) => {}
            Err(e) => return Err(users_error(e)),
        }
    }
    tracing::info!(user = %caller.user, tenant = %domain, id = gone.id, "tenant deleted; its id is not given again and its revisions stay in the repository");
    republish(&node).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_limits(
    State(node): Shared,
    caller: Caller,
    Path(domain): Path<String>,
    body: Bytes,
) -> Result<Json<TenantInfo>, ApiError> {
    super_admin_only(&caller, "set a tenant's limits")?;
    let patch: TenantLimitsPatch = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("expected {{\"max_apps\"?, \"memory_limit_mb\"?, \"max_instances\"?, \"requests_per_second\"?}}: {e}"),
        )
    })?;
    limits_ok(&patch)?;
    let t = store(&node)?
        .update(&domain, |t| {
            t.limits = t.limits.merged(&patch);
            Ok(())
        })
        .map_err(tenant_error)?;
    tracing::info!(user = %caller.user, tenant = %domain, limits = ?t.limits, "tenant limits set");
    republish(&node).await;
    Ok(Json(info(&node, &t)))
}

async fn set_config(
    State(node): Shared,
    caller: Caller,
    Path(domain): Path<String>,
    body: Bytes,
) -> Result<Json<TenantInfo>, ApiError> {
    if caller.tenant.as_deref() != Some(domain.as_str()) {
        super_admin_only(&caller, "configure another tenant")?;
    }
    let cfg: TenantConfig = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("expected {{\"env\": {{\"NAME\": \"value\", …}}}}: {e}"),
        )
    })?;
    check_env(&cfg.env).map_err(tenant_error)?;
    let t = store(&node)?
        .update(&domain, |t| {
            t.env = cfg.env;
            Ok(())
        })
        .map_err(tenant_error)?;
    tracing::info!(user = %caller.user, tenant = %domain, keys = %t.env.keys().cloned().collect::<Vec<_>>().join(","), "tenant configuration set");
    republish(&node).await;
    Ok(Json(info(&node, &t)))
}
