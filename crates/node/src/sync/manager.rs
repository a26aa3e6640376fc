//! A manager serves, and announces, the head of its own repository: at
//! start, after every commit it makes, and on every check interval (so a
//! revision pushed to a shared git or svn repository by another manager
//! is picked up too).

use super::{apply, Applied, BlobReader};
use crate::Node;
use std::sync::Arc;
use wharf_deploy::{Apps, CommitInfo, Repository};
use wharf_net::ShutdownSignal;
use wharf_proto::{AppEntry, Manifest, TenantId, SUPER_TENANT};
use wharf_runtime::App;

/// Serves and announces `head` for `tenant` (`fresh`: apps compiled already).
pub(crate) async fn serve_head(
    node: &Arc<Node>,
    repo: &Repository,
    tenant: TenantId,
    head: Manifest,
    fresh: Vec<Arc<App>>,
) -> Result<Applied, String> {
    let reader: BlobReader = {
        let repo = repo.clone();
        Arc::new(move |sha: &str| repo.blob_blocking(tenant, sha))
    };
    let applied = apply(node, tenant, head, reader, fresh).await?;
    node.publish_revision(tenant, &applied.revision).await;
    Ok(applied)
}

/// Reads the tenant's head and serves it.
pub(crate) async fn refresh(node: &Arc<Node>, repo: &Repository, tenant: TenantId) {
    match repo.head(tenant).await {
        Ok(Some(head)) => {
            let number = head.revision;
            if let Err(e) = serve_head(node, repo, tenant, head, vec![]).await {
                tracing::error!(tenant, revision = number, reason = %e, "cannot serve the repository's current revision; the previous one keeps serving");
            }
        }
        Ok(None) => {}
        Err(e) => {
            tracing::error!(tenant, repository = repo.kind(), error = %e, "cannot read the repository")
        }
    }
}

/// Commits each of `apps` for the super tenant unless its context is
/// taken (`wharf server --deploy-example`).
async fn deploy_initial(repo: &Repository, apps: Vec<(String, Vec<u8>)>) {
    for (context, bytes) in apps {
        let taken = match repo.head(SUPER_TENANT).await {
            Ok(head) => head.is_some_and(|h| h.apps.contains_key(&context)),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the repository");
                return;
            }
        };
        if taken {
            continue;
        }
        let size = bytes.len() as u64;
        let sha256 = match repo.put_blob(SUPER_TENANT, bytes).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, %context, "cannot store the initial application");
                continue;
            }
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let entry = AppEntry {
            sha256,
            size,
            deployed_at_ms: now,
            deployed_by: "wharf".into(),
            limits: Default::default(),
        };
        let ctx = context.clone();
        let info = CommitInfo {
            author: "wharf".into(),
            message: format!("deploy {context} (the example application)"),
            created_at_ms: now,
        };
        let result = repo
            .commit(SUPER_TENANT, info, move |apps: &Apps| {
                let mut apps = apps.clone();
                apps.entry(ctx.clone()).or_insert_with(|| entry.clone());
                Ok(apps)
            })
            .await;
        match result {
            Ok(c) => {
                tracing::info!(%context, revision = c.manifest.revision, "deployed the example application")
            }
            Err(e) => {
                tracing::error!(error = %e, %context, "cannot deploy the example application")
            }
        }
    }
}

/// Serves the head of every tenant at start, reports ready, then checks
/// again every `check_interval` until shutdown.
pub(crate) async fn run(
    node: Arc<Node>,
    repo: Repository,
    initial_apps: Vec<(String, Vec<u8>)>,
    mut shutdown: ShutdownSignal,
) {
    deploy_initial(&repo, initial_apps).await;
    for tenant in node.tenant_ids() {
        refresh(&node, &repo, tenant).await;
    }
    node.mark_initial_deploy_done();
    let mut tick = tokio::time::interval(node.config.deployment_synchronizer.check_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                for tenant in node.tenant_ids() {
                    refresh(&node, &repo, tenant).await;
                }
            }
            _ = shutdown.wait() => return,
        }
    }
}
