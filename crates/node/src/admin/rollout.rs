//! How far a revision has reached the workers, from their gossip.

use crate::sync::parse_sync_error;
use crate::Node;
use std::time::Duration;
use wharf_cluster::{Member, MemberState, Role};
use wharf_proto::api::{Rollout, RolloutState, WorkerRollout};
use wharf_proto::TenantId;

/// The workers of this manager's domain (any state but gone).
pub(crate) fn workers<'a>(node: &Node, members: &'a [Member]) -> Vec<&'a Member> {
    let domain = &node.config.clustering.domain;
    members
        .iter()
        .filter(|m| m.info.role == Role::Worker && &m.info.domain == domain)
        .filter(|m| m.info.state != MemberState::Left)
        .collect()
}

/// The revision of `tenant` a member serves (0: none).
pub(crate) fn served(m: &Member, tenant: TenantId) -> u64 {
    m.info.revisions.get(&tenant).map_or(0, |r| r.number)
}

/// The rollout of `revision` now. Without clustering the manager serves
/// it itself and the rollout is complete.
pub(crate) fn now(
    node: &Node,
    tenant: TenantId,
    tenant_name: Option<&str>,
    revision: u64,
) -> Rollout {
    let Some(cluster) = node.cluster.get() else {
        return Rollout {
            tenant: tenant_name.map(str::to_string),
            revision,
            complete: true,
            workers: vec![],
        };
    };
    let members = cluster.members();
    let workers: Vec<WorkerRollout> = workers(node, &members)
        .into_iter()
        .filter(|m| m.info.state == MemberState::Ready)
        .map(|m| {
            let serves = served(m, tenant);
            let error = m
                .info
                .sync_errors
                .get(&tenant)
                .and_then(|e| parse_sync_error(e))
                .filter(|(n, _)| *n >= revision && serves < revision)
                .map(|(_, reason)| reason.to_string());
            WorkerRollout {
                node_id: m.node_id.clone(),
                sub_domain: m.info.sub_domain.clone(),
                state: if serves >= revision {
                    RolloutState::Serving
                } else if error.is_some() {
                    RolloutState::Failed
                } else {
                    RolloutState::Pending
                },
                revision: serves,
                error,
            }
        })
        .collect();
    Rollout {
        tenant: tenant_name.map(str::to_string),
        revision,
        complete: !workers.is_empty() && workers.iter().all(|w| w.state == RolloutState::Serving),
        workers,
    }
}

/// Waits (at most `timeout`) until every ready worker serves `revision`
/// or has failed it; returns the rollout as it then stands.
pub(crate) async fn wait(
    node: &Node,
    tenant: TenantId,
    tenant_name: Option<&str>,
    revision: u64,
    timeout: Duration,
) -> Rollout {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut view = node.cluster.get().map(|c| c.watch());
    loop {
        let r = now(node, tenant, tenant_name, revision);
        let settled =
            !r.workers.is_empty() && r.workers.iter().all(|w| w.state != RolloutState::Pending);
        if r.complete || settled || view.is_none() || tokio::time::Instant::now() >= deadline {
            return r;
        }
        let v = view.as_mut().expect("checked above");
        tokio::select! {
            changed = v.changed() => if changed.is_err() { return r },
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}
