//! The node as a cluster member: what it publishes and when.

use crate::{Node, NodeError, NodeState};
use std::collections::BTreeMap;
use std::sync::Arc;
use wharf_cluster::member::expand_placeholders;
use wharf_cluster::{Cluster, MemberInfo, MemberState, Role};

fn member_state(s: NodeState) -> MemberState {
    match s {
        NodeState::Starting => MemberState::Starting,
        NodeState::Ready => MemberState::Ready,
        NodeState::Draining => MemberState::Draining,
    }
}

/// Joins the cluster with this node's properties, and keeps its published
/// state in step with the node's.
pub(crate) async fn join(node: &Arc<Node>) -> Result<Cluster, NodeError> {
    let c = &node.config.clustering;
    let s = &node.config.server;
    let http_proxy = node.urls.http_port();
    let https_proxy = node.urls.https_port();
    let vars: BTreeMap<&str, String> = BTreeMap::from([
        ("hostName", s.host_name.clone()),
        ("mgtHostName", s.mgt_host_name.clone()),
        ("httpPort", http_proxy.to_string()),
        ("httpsPort", https_proxy.to_string()),
        ("httpProxyPort", http_proxy.to_string()),
        ("httpsProxyPort", https_proxy.to_string()),
    ]);
    let mut properties = BTreeMap::new();
    for (k, v) in &c.properties {
        let value = expand_placeholders(v, &vars)
            .map_err(|e| NodeError::Cluster(format!("clustering.properties.{k}: {e}")))?;
        properties.insert(k.clone(), value);
    }
    let role = if s.worker_node {
        Role::Worker
    } else {
        Role::Manager
    };
    let info = MemberInfo {
        role,
        domain: c.domain.clone(),
        sub_domain: properties.get("subDomain").cloned(),
        state: member_state(node.state()),
        http_url: Some(node.urls.http_base()),
        https_url: Some(node.urls.https_base()),
        http_addr: Some(join_host(&c.local_member_host, node.bound.http.port())),
        status_addr: Some(join_host(&c.local_member_host, node.bound.status.port())),
        http_proxy_port: s.http.proxy_port,
        https_proxy_port: s.https.proxy_port,
        host_name: Some(s.host_name.clone()),
        mgt_host_name: Some(s.mgt_host_name.clone()),
        https_addr: Some(join_host(&c.local_member_host, node.bound.https.port())),
        tls_sha256: Some(node.tls_sha256.clone()),
        revisions: Default::default(),
        sync_errors: Default::default(),
        tenants: Default::default(),
        stats: Default::default(),
        properties,
    };

    wharf_cluster::join_configured(c, &info)
        .await
        .map_err(|e| NodeError::Cluster(e.to_string()))
}

/// Publishes every node state change until the node's state channel closes.
pub(crate) async fn follow_state(
    cluster: Arc<Cluster>,
    mut states: tokio::sync::watch::Receiver<NodeState>,
) {
    loop {
        let s = *states.borrow_and_update();
        cluster.set_state(member_state(s)).await;
        if states.changed().await.is_err() {
            return;
        }
    }
}

/// `host:port`, with brackets around an IPv6 address.
fn join_host(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// How often a node publishes what its applications have answered.
const STATS_PERIOD: std::time::Duration = std::time::Duration::from_secs(2);

/// Publishes, per tenant, the requests and 5xx answers of this node's
/// applications (`stats:<tenant>`), for the console; only what changed.
pub(crate) async fn publish_stats(
    node: Arc<Node>,
    cluster: Arc<Cluster>,
    mut shutdown: wharf_net::ShutdownSignal,
) {
    let mut last: BTreeMap<wharf_proto::TenantId, String> = BTreeMap::new();
    let mut tick = tokio::time::interval(STATS_PERIOD);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait() => return,
        }
        let now: BTreeMap<wharf_proto::TenantId, String> = node
            .app_counts()
            .into_iter()
            .map(|(tenant, counts)| {
                let value = serde_json::to_string(&counts).expect("counts serialize");
                (tenant, value)
            })
            .collect();
        for (tenant, value) in &now {
            if last.get(tenant) != Some(value) {
                cluster
                    .set(
                        &format!("{}{tenant}", wharf_proto::gossip::STATS_PREFIX),
                        value,
                    )
                    .await;
            }
        }
        for gone in last.keys().filter(|t| !now.contains_key(t)) {
            cluster
                .set(
                    &format!("{}{gone}", wharf_proto::gossip::STATS_PREFIX),
                    "{}",
                )
                .await;
        }
        last = now;
    }
}
