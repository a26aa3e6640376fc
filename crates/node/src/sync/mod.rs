//! The node's side of the deployment synchronizer: turning a revision into
//! the table of applications served, all at once.
//!
//! A manager serves the head of its own repository ([`manager`]); a worker
//! follows the revisions the manager announces in gossip, checks each out
//! into its local store and serves it ([`follow`]); the manager answers
//! workers' check-outs of the builtin repository ([`endpoint`]). Either way
//! a revision is applied by [`apply`]: every application it names is
//! compiled (or kept, if unchanged) before the tenant's table is swapped,
//! so a node serves revision N or N+1, never a mix, and a revision that
//! fails leaves the previous one serving.

pub(crate) mod endpoint;
pub(crate) mod follow;
pub(crate) mod manager;

use crate::apps::{AppTable, TenantApps};
use crate::Node;
use std::sync::Arc;
use std::time::Instant;
use wharf_deploy::RepoError;
use wharf_proto::context::file_name_for_context;
use wharf_proto::gossip::{revision_key, sync_error_key, RevisionRef};
use wharf_proto::{AppLimits, Manifest, TenantId};
use wharf_runtime::{App, Limits};

/// Reads a component by SHA-256 (on a blocking thread).
pub(crate) type BlobReader = Arc<dyn Fn(&str) -> Result<Vec<u8>, RepoError> + Send + Sync>;

/// What applying a revision did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Applied {
    pub revision: RevisionRef,
    /// False when the node already served exactly this revision.
    pub changed: bool,
    pub compiled: usize,
    pub kept: usize,
}

/// The gossip reference of a manifest.
pub(crate) fn revision_ref(m: &Manifest) -> RevisionRef {
    RevisionRef {
        number: m.revision,
        manifest_sha256: m.digest(),
    }
}

pub(crate) fn runtime_limits(l: &AppLimits) -> Limits {
    Limits {
        memory_limit: l.memory_limit_mb.map(|mb| mb * 1024 * 1024),
        request_timeout: l.request_timeout_ms.map(std::time::Duration::from_millis),
        max_instances: l.max_instances,
    }
}

/// Where a tenant's applications live on this node: their URL prefix
/// (`/t/<domain>`, empty for the super tenant) and the name prefix of
/// their logs and metrics (`<domain>/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Place {
    pub url_prefix: String,
    pub name_prefix: String,
}

impl Place {
    pub(crate) fn of(node: &Node, tenant: TenantId) -> Result<Place, String> {
        if tenant == wharf_proto::SUPER_TENANT {
            return Ok(Place {
                url_prefix: String::new(),
                name_prefix: String::new(),
            });
        }
        let dir = node.tenants.load();
        let t = dir
            .by_id(tenant)
            .ok_or_else(|| format!("tenant {tenant} is not known (yet) on this node"))?;
        Ok(Place {
            url_prefix: t.prefix(),
            name_prefix: format!("{}/", t.domain),
        })
    }

    /// The context an application is served at: `/t/<domain>/x` for a
    /// tenant's `/x`.
    pub(crate) fn context(&self, context: &str) -> String {
        match (self.url_prefix.is_empty(), context) {
            (true, c) => c.to_string(),
            (false, "/") => self.url_prefix.clone(),
            (false, c) => format!("{}{c}", self.url_prefix),
        }
    }

    /// The name an application has in logs and metrics: its file name in
    /// the repository without `.wasm` (`hello`, `ROOT`, `shop#cart`),
    /// after its tenant's domain.
    pub(crate) fn app_name(&self, context: &str) -> String {
        format!(
            "{}{}",
            self.name_prefix,
            file_name_for_context(context).trim_end_matches(".wasm")
        )
    }
}

/// Serves `manifest` as the tenant's applications: compiles what is new
/// (components from `blobs`; `fresh` are apps the caller compiled
/// already), keeps what is unchanged, then swaps the table whole. On any
/// failure nothing changes and the reason names the application.
pub(crate) async fn apply(
    node: &Arc<Node>,
    tenant: TenantId,
    manifest: Manifest,
    blobs: BlobReader,
    fresh: Vec<Arc<App>>,
) -> Result<Applied, String> {
    let _one_at_a_time = node.apply_lock.lock().await;
    let place = Place::of(node, tenant)?;
    let revision = revision_ref(&manifest);
    let current = node.apps.load().tenant(tenant).cloned();
    if current
        .as_ref()
        .is_some_and(|c| c.revision.as_ref() == Some(&revision))
    {
        return Ok(Applied {
            revision,
            changed: false,
            compiled: 0,
            kept: 0,
        });
    }
    let started = Instant::now();
    let worker = node.clone();
    let number = manifest.revision;
    let built = tokio::task::spawn_blocking(move || {
        let mut table = AppTable::default();
        let (mut compiled, mut kept) = (0, 0);
        for (context, entry) in &manifest.apps {
            let limits = runtime_limits(&entry.limits);
            let served_at = place.context(context);
            let same = |a: &&Arc<App>| {
                a.sha256 == entry.sha256 && a.requested_limits == limits && a.context == served_at
            };
            let reuse = current
                .as_ref()
                .and_then(|c| c.table.get(context))
                .filter(same)
                .or_else(|| fresh.iter().find(same));
            let app = match reuse {
                Some(app) => {
                    kept += 1;
                    app.clone()
                }
                None => {
                    let bytes = blobs(&entry.sha256)
                        .map_err(|e| format!("revision {number}: {context}: {e}"))?;
                    let loaded = worker
                        .runtime
                        .load_with_limits(&place.app_name(context), &served_at, &bytes, limits)
                        .map_err(|e| format!("revision {number}: {context}: {e}"))?;
                    compiled += 1;
                    Arc::new(loaded)
                }
            };
            table = table.with(context, app);
        }
        Ok::<_, String>((table, compiled, kept))
    })
    .await
    .map_err(|e| format!("revision {number}: the compiler task failed: {e}"))?;
    let (table, compiled, kept) = built?;
    let contexts: Vec<&str> = table.iter().map(|(c, _)| c).collect();
    tracing::info!(
        tenant,
        revision = revision.number,
        apps = %contexts.join(","),
        compiled,
        kept,
        took_ms = started.elapsed().as_millis() as u64,
        "serving revision"
    );
    for (_, app) in table.iter() {
        node.metrics.deploy(&app.name, "deployed");
    }
    node.apps.rcu(|s| {
        s.with_tenant(
            tenant,
            TenantApps {
                revision: Some(revision.clone()),
                table: table.clone(),
            },
        )
    });
    node.metrics.apps.set(node.apps.load().len() as i64);
    Ok(Applied {
        revision,
        changed: true,
        compiled,
        kept,
    })
}

impl Node {
    /// Tells the cluster which revision of `tenant` this node serves (a
    /// worker) or has as current (a manager), and that it has no error.
    pub(crate) async fn publish_revision(&self, tenant: TenantId, r: &RevisionRef) {
        if let Some(c) = self.cluster.get() {
            c.set(&revision_key(tenant), &r.to_string()).await;
            c.set(&sync_error_key(tenant), "").await;
        }
    }

    /// Tells the cluster this node no longer serves (or announces) `tenant`.
    pub(crate) async fn withdraw_revision(&self, tenant: TenantId) {
        if let Some(c) = self.cluster.get() {
            c.set(&revision_key(tenant), "").await;
            c.set(&sync_error_key(tenant), "").await;
        }
    }

    /// Tells the cluster why `tenant`'s revision `number` could not be served.
    pub(crate) async fn publish_sync_error(&self, tenant: TenantId, number: u64, reason: &str) {
        if let Some(c) = self.cluster.get() {
            let mut text = format!("{number}:{reason}");
            // Gossip carries the whole state in datagrams: keep it short.
            if text.len() > 400 {
                let mut end = 400;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.truncate(end);
            }
            c.set(&sync_error_key(tenant), &text).await;
        }
    }
}

/// A published sync error: the revision it is about and the reason.
pub fn parse_sync_error(value: &str) -> Option<(u64, &str)> {
    let (n, reason) = value.split_once(':')?;
    Some((n.parse().ok()?, reason))
}
