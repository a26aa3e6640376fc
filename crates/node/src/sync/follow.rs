//! A worker follows the revisions its manager announces (`AutoCheckout`).
//!
//! At start it serves its local copy at once, so a restart needs neither
//! the manager nor the repository. Then, on every change of the cluster
//! view, it compares what the manager announces with what it serves and
//! checks out what differs; every `check_interval` it checks regardless,
//! which heals a missed notice and lets a late joiner catch up. A failed
//! check-out or compile leaves the previous revision serving and is
//! published in gossip for the manager's rollout report.

use super::{apply, BlobReader};
use crate::Node;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tokio::time::Instant;
use wharf_cluster::{Member, MemberState, Role};
use wharf_deploy::{Hint, LocalStore, ManagerEndpoint, Source};
use wharf_net::ShutdownSignal;
use wharf_proto::gossip::RevisionRef;
use wharf_proto::TenantId;

pub(crate) struct Follower {
    node: Arc<Node>,
    source: Source,
    local: Arc<LocalStore>,
    /// The last failure logged per tenant, so a failing revision is
    /// logged once, not on every check.
    failing: BTreeMap<TenantId, String>,
}

/// The manager of this worker's domain to check out from: one that
/// publishes its HTTPS address and certificate, ready ones first, then
/// the one announcing the most.
pub(crate) fn pick_manager<'a>(members: &'a [Member], domain: &str) -> Option<&'a Member> {
    members
        .iter()
        .filter(|m| m.info.role == Role::Manager && m.info.domain == domain)
        .filter(|m| m.info.state != MemberState::Left)
        .max_by_key(|m| {
            (
                m.info.state == MemberState::Ready,
                m.info.revisions.values().map(|r| r.number).sum::<u64>(),
                std::cmp::Reverse(m.node_id.clone()),
            )
        })
}

fn endpoint(m: &Member) -> Option<ManagerEndpoint> {
    Some(ManagerEndpoint {
        node_id: m.node_id.clone(),
        https_addr: m.info.https_addr.clone()?,
        tls_sha256: m.info.tls_sha256.clone()?,
    })
}

impl Follower {
    pub(crate) fn new(node: Arc<Node>, source: Source, local: LocalStore) -> Follower {
        Follower {
            node,
            source,
            local: Arc::new(local),
            failing: BTreeMap::new(),
        }
    }

    fn local_reader(&self) -> BlobReader {
        let local = self.local.clone();
        Arc::new(move |sha: &str| local.blobs().get(sha))
    }

    /// Serves what the local store holds, before anything else.
    async fn serve_local(&mut self) {
        for tenant in self.local.tenants() {
            let manifest = match self.local.current(tenant) {
                Ok(Some(m)) => m,
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(tenant, error = %e, "cannot read the local copy");
                    continue;
                }
            };
            let number = manifest.revision;
            match apply(&self.node, tenant, manifest, self.local_reader(), vec![]).await {
                Ok(a) => {
                    tracing::info!(
                        tenant,
                        revision = number,
                        "serving the local copy until the manager is reached"
                    );
                    self.node.publish_revision(tenant, &a.revision).await;
                }
                Err(e) => {
                    tracing::error!(tenant, reason = %e, "cannot serve the local copy; checking out afresh")
                }
            }
        }
    }

    /// Checks out and serves `tenant` from `hint`; true when the tenant now
    /// serves what the hint announces (or the repository's current
    /// revision, without an announcement).
    async fn sync_tenant(&mut self, tenant: TenantId, hint: &Hint) -> bool {
        let local = self.local.clone();
        let wanted = hint.announced.as_ref().map_or(0, |r| r.number);
        let outcome = async {
            let fetched = self
                .source
                .checkout(tenant, hint, move |sha| local.blobs().has(sha))
                .await
                .map_err(|e| e.to_string())?;
            let Some(fetched) = fetched else {
                return Ok(None);
            };
            for bytes in fetched.blobs.values() {
                self.local.blobs().put(bytes).map_err(|e| e.to_string())?;
            }
            let manifest = fetched.manifest;
            let applied = apply(
                &self.node,
                tenant,
                manifest.clone(),
                self.local_reader(),
                vec![],
            )
            .await?;
            self.local
                .set_current(tenant, &manifest)
                .map_err(|e| e.to_string())?;
            Ok(Some(applied))
        }
        .await;
        match outcome {
            Ok(Some(applied)) => {
                if self.failing.remove(&tenant).is_some() || applied.changed {
                    self.node.publish_revision(tenant, &applied.revision).await;
                }
                hint.announced
                    .as_ref()
                    .is_none_or(|r| applied.revision.number >= r.number)
            }
            Ok(None) => hint.announced.is_none(),
            Err(reason) => {
                if self.failing.get(&tenant) != Some(&reason) {
                    tracing::error!(
                        tenant,
                        revision = wanted,
                        source = self.source.kind(),
                        %reason,
                        "cannot check out the revision; the previous one keeps serving"
                    );
                    self.node.publish_sync_error(tenant, wanted, &reason).await;
                    self.failing.insert(tenant, reason);
                }
                false
            }
        }
    }

    /// Takes up the manager's tenants: new ones are served as their
    /// revisions arrive; ones gone (deleted or deactivated) stop being
    /// served here and are forgotten.
    async fn follow_tenants(&mut self, tenants: &BTreeMap<String, wharf_proto::TenantSettings>) {
        if self.node.tenants.load().same_as(tenants) {
            return;
        }
        self.node.set_tenants(tenants);
        if let Err(e) = self.local.set_directory(tenants) {
            tracing::error!(error = %e, "cannot keep the tenants in the local copy");
        }
        let keep: BTreeSet<TenantId> = self.node.tenant_ids().into_iter().collect();
        let served: Vec<TenantId> = self.node.apps.load().tenants().map(|(t, _)| t).collect();
        for tenant in served.into_iter().chain(self.local.tenants()) {
            if keep.contains(&tenant) {
                continue;
            }
            self.node.apps.rcu(|s| s.without_tenant(tenant));
            if let Err(e) = self.local.remove(tenant) {
                tracing::error!(tenant, error = %e, "cannot forget the tenant's local copy");
            }
            self.node.withdraw_revision(tenant).await;
            tracing::info!(tenant, "tenant no longer served");
        }
    }

    /// One pass: every tenant announced, served or stored. `periodic`
    /// checks even tenants that look up to date. True when every announced
    /// revision is served.
    async fn pass(&mut self, periodic: bool) -> bool {
        let members = self
            .node
            .cluster
            .get()
            .map(|c| c.members())
            .unwrap_or_default();
        let manager = pick_manager(&members, &self.node.config.clustering.domain);
        // The tenants are the manager's; while no manager is seen, the
        // last known ones stay.
        if let Some(m) = manager {
            self.follow_tenants(&m.info.tenants).await;
        }
        let known: BTreeSet<TenantId> = self.node.tenant_ids().into_iter().collect();
        let announced: BTreeMap<TenantId, RevisionRef> = manager
            .map(|m| m.info.revisions.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|(t, _)| known.contains(t))
            .collect();
        let endpoint = manager.and_then(endpoint);
        let served: BTreeMap<TenantId, Option<RevisionRef>> = self
            .node
            .apps
            .load()
            .tenants()
            .map(|(t, a)| (t, a.revision.clone()))
            .collect();
        let tenants: BTreeSet<TenantId> = announced
            .keys()
            .chain(served.keys())
            .copied()
            .chain(self.local.tenants())
            .filter(|t| known.contains(t))
            .collect();
        let mut all = true;
        for tenant in tenants {
            let want = announced.get(&tenant).cloned();
            let have = served.get(&tenant).cloned().flatten();
            let behind = want.as_ref().is_some_and(|w| have.as_ref() != Some(w));
            if !behind && !periodic {
                continue;
            }
            // Without an announcement the builtin repository has nothing
            // to fetch; git and svn are read directly.
            if want.is_none() && matches!(self.source, Source::Builtin(_)) {
                continue;
            }
            let hint = Hint {
                announced: want,
                manager: endpoint.clone(),
            };
            all &= self.sync_tenant(tenant, &hint).await;
        }
        all
    }

    /// Runs until shutdown. Reports the node ready once every announced
    /// revision is served, or after `initial_sync_timeout` with what it has.
    pub(crate) async fn run(mut self, mut shutdown: ShutdownSignal, follow: bool) {
        self.serve_local().await;
        if !follow {
            self.node.mark_initial_deploy_done();
            shutdown.wait().await;
            return;
        }
        let cfg = &self.node.config.deployment_synchronizer;
        let ready_by = Instant::now() + cfg.initial_sync_timeout;
        let mut tick = tokio::time::interval(cfg.check_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut view = self.node.cluster.get().map(|c| c.watch());
        let mut ready = false;
        // The first pass checks everything.
        let mut periodic = true;
        loop {
            let caught_up = self.pass(periodic).await;
            let manager_known = self.node.cluster.get().is_some_and(|c| {
                pick_manager(&c.members(), &self.node.config.clustering.domain).is_some()
            });
            if !ready
                && ((caught_up && (manager_known || !matches!(self.source, Source::Builtin(_))))
                    || Instant::now() >= ready_by)
            {
                ready = true;
                self.node.mark_initial_deploy_done();
            }
            let changed = async {
                match view.as_mut() {
                    Some(v) => v.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            periodic = tokio::select! {
                ok = changed => {
                    if !ok { view = None; }
                    false
                }
                _ = tick.tick() => true,
                _ = tokio::time::sleep_until(ready_by), if !ready => false,
                _ = shutdown.wait() => return,
            };
        }
    }
}
