//! What the admin API and the console both do: deploy, undeploy, roll
//! back, list, read history and members. Each takes an authenticated
//! caller and the tenant it acts for (see `api::tenant_of`), and answers
//! with the admin API's bodies or an [`ApiError`].

use super::auth::Caller;
use super::{rollout, ApiError};
use crate::sync::{manager::serve_head, runtime_limits, Place};
use crate::Node;
use axum::body::Bytes;
use axum::http::StatusCode;
use std::collections::BTreeMap;
use std::sync::Arc;
use wharf_cluster::MemberState;
use wharf_deploy::{Apps, CommitInfo, Committed, RepoError, Repository};
use wharf_proto::api::{
    AppInfo, AppList, ChangeResponse, MemberView, RevisionInfo, Rollout, WorkerApp,
};
use wharf_proto::context::validate_deploy_context;
use wharf_proto::{AppEntry, AppLimits, Manifest, TenantId};

/// The tenant a call acts for: its id, and its domain (`None`: the super tenant).
#[derive(Debug, Clone)]
pub(crate) struct For {
    pub id: TenantId,
    pub name: Option<String>,
}

pub(crate) fn repository(node: &Node) -> Result<&Repository, ApiError> {
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

pub(crate) fn repo_error(e: RepoError) -> ApiError {
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

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Limits an application asks for, refused when above what this cluster
/// allows.
pub(crate) fn check_limits(
    node: &Node,
    memory_limit_mb: Option<u64>,
    request_timeout_ms: Option<u64>,
    max_instances: Option<u32>,
) -> Result<AppLimits, ApiError> {
    let rc = &node.config.runtime;
    let bad = |m: String| Err(ApiError::new(StatusCode::BAD_REQUEST, m));
    let node_mb = rc.memory_limit / (1024 * 1024);
    if let Some(mb) = memory_limit_mb.filter(|mb| *mb == 0 || *mb > node_mb) {
        return bad(format!(
            "memory_limit_mb {mb} must be between 1 and this cluster's {node_mb}"
        ));
    }
    let node_ms = rc.request_timeout.as_millis() as u64;
    if let Some(ms) = request_timeout_ms.filter(|ms| *ms == 0 || *ms > node_ms) {
        return bad(format!(
            "request_timeout_ms {ms} must be between 1 and this cluster's {node_ms}"
        ));
    }
    if let Some(n) = max_instances.filter(|n| *n == 0 || *n > rc.max_instances_per_app) {
        return bad(format!(
            "max_instances {n} must be between 1 and this cluster's {}",
            rc.max_instances_per_app
        ));
    }
    Ok(AppLimits {
        memory_limit_mb,
        request_timeout_ms,
        max_instances,
    })
}

/// A context path to deploy at, checked.
pub(crate) fn check_context(c: &str) -> Result<(), ApiError> {
    validate_deploy_context(c).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))
}

/// Validates `bytes` by compiling them as every worker will, commits them
/// at `context` as the tenant's next revision, serves and announces it,
/// and reports the rollout (after waiting for it, if `wait`).
pub(crate) async fn deploy(
    node: &Arc<Node>,
    caller: &Caller,
    target: For,
    context: String,
    limits: AppLimits,
    bytes: Bytes,
    wait: bool,
) -> Result<(StatusCode, ChangeResponse), ApiError> {
    check_context(&context)?;
    let repo = writable(node)?.clone();
    let tenant = target.id;
    let place = Place::of(node, tenant).map_err(|e| ApiError::new(StatusCode::CONFLICT, e))?;
    let compiler = node.clone();
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
    let who = target.name.clone();
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
    finish(node, &repo, target, committed, vec![app], wait, message).await
}

/// Commits the tenant's next revision without the application at `context`.
pub(crate) async fn undeploy(
    node: &Arc<Node>,
    caller: &Caller,
    target: For,
    context: String,
    wait: bool,
) -> Result<(StatusCode, ChangeResponse), ApiError> {
    let repo = writable(node)?.clone();
    let ctx = context.clone();
    let committed = repo
        .commit(
            target.id,
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
    tracing::info!(user = %caller.user, tenant = target.id, context = %context, revision = committed.manifest.revision, "undeploy");
    let message = format!(
        "undeployed {context} as revision {}",
        committed.manifest.revision
    );
    finish(node, &repo, target, committed, vec![], wait, message).await
}

/// Commits the tenant's next revision with revision `to`'s applications.
pub(crate) async fn rollback(
    node: &Arc<Node>,
    caller: &Caller,
    target: For,
    to: u64,
    wait: bool,
) -> Result<(StatusCode, ChangeResponse), ApiError> {
    let repo = writable(node)?.clone();
    let old = repo.manifest(target.id, to).await.map_err(repo_error)?;
    let apps = old.apps.clone();
    let committed = repo
        .commit(
            target.id,
            CommitInfo {
                author: caller.user.clone(),
                message: format!("rollback to revision {to}"),
                created_at_ms: now_ms(),
            },
            move |_: &Apps| Ok(apps.clone()),
        )
        .await
        .map_err(repo_error)?;
    tracing::info!(user = %caller.user, tenant = target.id, to, revision = committed.manifest.revision, "rollback");
    let message = if committed.changed {
        format!(
            "rolled back to revision {to} as revision {}",
            committed.manifest.revision
        )
    } else {
        format!(
            "revision {} already has revision {to}'s applications",
            committed.manifest.revision
        )
    };
    finish(node, &repo, target, committed, vec![], wait, message).await
}

/// After a commit: serve it here, announce it, and report the rollout
/// (after waiting for it, when asked). Without any worker in the cluster
/// the answer is the seed's error: the revision is kept for the first.
async fn finish(
    node: &Arc<Node>,
    repo: &Repository,
    target: For,
    committed: Committed,
    fresh: Vec<Arc<wharf_runtime::App>>,
    wait: bool,
    message: String,
) -> Result<(StatusCode, ChangeResponse), ApiError> {
    let revision = committed.manifest.revision;
    if let Err(e) = serve_head(node, repo, target.id, committed.manifest, fresh).await {
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
    let name = target.name.as_deref();
    let r = if wait {
        rollout::wait(node, target.id, name, revision, timeout).await
    } else {
        rollout::now(node, target.id, name, revision)
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
        ChangeResponse {
            revision,
            message,
            rollout: r,
            warning,
        },
    ))
}

/// Where `revision` stands on the workers now.
pub(crate) fn rollout_of(node: &Node, target: &For, revision: u64) -> Rollout {
    rollout::now(node, target.id, target.name.as_deref(), revision)
}

/// The applications of the tenant's current revision, and what each
/// worker serves.
pub(crate) async fn app_list(node: &Node, target: &For) -> Result<AppList, ApiError> {
    let repo = repository(node)?;
    let head = repo.head(target.id).await.map_err(repo_error)?;
    let revision = head.as_ref().map_or(0, |m| m.revision);
    let r = rollout_of(node, target, revision);
    // The manifests the workers serve, to tell whether each app is among them.
    let mut served: BTreeMap<u64, Option<Manifest>> = BTreeMap::new();
    for w in &r.workers {
        if let std::collections::btree_map::Entry::Vacant(slot) = served.entry(w.revision) {
            let m = if Some(w.revision) == head.as_ref().map(|h| h.revision) {
                head.clone()
            } else if w.revision == 0 {
                None
            } else {
                repo.manifest(target.id, w.revision).await.ok()
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
    Ok(AppList {
        tenant: target.name.clone(),
        revision,
        apps,
        rollout: r,
    })
}

/// Every revision of the tenant, newest first.
pub(crate) async fn history(node: &Node, target: &For) -> Result<Vec<RevisionInfo>, ApiError> {
    let repo = repository(node)?;
    let all = repo.history(target.id).await.map_err(repo_error)?;
    let current = all.first().map(|m| m.revision);
    Ok(all
        .into_iter()
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
        .collect())
}

/// The cluster's members, as the admin API shows them.
pub(crate) fn members(node: &Node) -> Vec<MemberView> {
    let Some(cluster) = node.cluster.get() else {
        return vec![];
    };
    let heard = cluster.last_heard();
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
        .collect()
}
