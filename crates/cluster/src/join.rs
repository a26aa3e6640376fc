//! Joining the cluster as configured in `[clustering]`: bind the UDP
//! socket, resolve the advertised address, seal the transport.

use crate::transport::SealedUdpTransport;
use crate::{Cluster, JoinError, JoinOptions, MemberInfo};
use wharf_config::ClusteringConfig;

/// Joins with `info` as this member's properties. The node id is
/// `role@address`, the generation the start time in milliseconds, so a
/// restarted member is told apart from its previous life.
pub async fn join_configured(
    c: &ClusteringConfig,
    info: &MemberInfo,
) -> Result<Cluster, JoinError> {
    let err = |m: String| JoinError(m);
    let socket = std::net::UdpSocket::bind(("0.0.0.0", c.local_member_port)).map_err(|e| {
        err(format!(
            "cannot bind clustering.local_member_port {}/udp: {e}",
            c.local_member_port
        ))
    })?;
    let listen_addr = socket.local_addr().map_err(|e| err(e.to_string()))?;
    let advertise = tokio::net::lookup_host((c.local_member_host.as_str(), listen_addr.port()))
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            err(format!(
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
        node_id: format!("{}@{advertise}", info.role),
        generation,
        listen_addr,
        advertise_addr: advertise,
        seeds: c.members.clone(),
        gossip_interval: c.gossip_interval,
        dead_member_grace: c.dead_member_grace,
    };
    let transport = SealedUdpTransport::with_socket(c.secret.as_deref(), socket);
    tracing::info!(
        domain = %info.domain,
        sub_domain = %info.sub_domain.as_deref().unwrap_or("-"),
        role = %info.role,
        address = %advertise,
        well_known_members = %c.members.join(","),
        "joining the cluster"
    );
    Cluster::join(opts, info, &transport).await
}
