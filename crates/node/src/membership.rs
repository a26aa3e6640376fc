//! The node as a cluster member: what it publishes and when.

use crate::{Node, NodeError, NodeState};
use std::collections::BTreeMap;
use std::sync::Arc;
use wharf_cluster::member::expand_placeholders;
use wharf_cluster::transport::SealedUdpTransport;
use wharf_cluster::{Cluster, JoinOptions, MemberInfo, MemberState, Role};

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
        http_proxy_port: s.http.proxy_port,
        https_proxy_port: s.https.proxy_port,
        host_name: Some(s.host_name.clone()),
        mgt_host_name: Some(s.mgt_host_name.clone()),
        revision: String::new(),
        properties,
    };

    let socket = std::net::UdpSocket::bind(("0.0.0.0", c.local_member_port)).map_err(|e| {
        NodeError::Cluster(format!(
            "cannot bind clustering.local_member_port {}/udp: {e}",
            c.local_member_port
        ))
    })?;
    let port = socket
        .local_addr()
        .map_err(|e| NodeError::Cluster(e.to_string()))?
        .port();
    let advertise = tokio::net::lookup_host((c.local_member_host.as_str(), port))
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            NodeError::Cluster(format!(
                "clustering.local_member_host {:?} does not resolve",
                c.local_member_host
            ))
        })?;
    if c.secret.is_none() {
        tracing::warn!("CLUSTER TRAFFIC IS NOT AUTHENTICATED OR ENCRYPTED (clustering.insecure = true); anyone who can reach {advertise}/udp can join");
    }
    let generation = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let opts = JoinOptions {
        node_id: format!("{role}@{advertise}"),
        generation,
        listen_addr: socket
            .local_addr()
            .map_err(|e| NodeError::Cluster(e.to_string()))?,
        advertise_addr: advertise,
        seeds: c.members.clone(),
        gossip_interval: c.gossip_interval,
        dead_member_grace: c.dead_member_grace,
    };
    let transport = SealedUdpTransport::with_socket(c.secret.as_deref(), socket);
    tracing::info!(
        domain = %c.domain,
        sub_domain = %info.sub_domain.as_deref().unwrap_or("-"),
        role = %role,
        address = %advertise,
        well_known_members = %c.members.join(","),
        "joining the cluster"
    );
    let cluster = Cluster::join(opts, &info, &transport)
        .await
        .map_err(|e| NodeError::Cluster(e.to_string()))?;
    Ok(cluster)
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
