//! Membership on chitchat's in-memory transport (links can be cut and
//! restored) and over real, sealed UDP on loopback.

use chitchat::transport::{ChannelTransport, Transport};
use std::net::SocketAddr;
use std::time::Duration;
use wharf_cluster::transport::SealedUdpTransport;
use wharf_cluster::{Cluster, JoinOptions, MemberInfo, MemberState, Role};
use wharf_testkit::{wait_until_async, PATIENCE};

fn info(role: Role, sub_domain: &str) -> MemberInfo {
    MemberInfo::new(role, "wso2.as.domain", Some(sub_domain), MemberState::Ready)
}

fn opts(i: usize, addr: SocketAddr, seeds: &[SocketAddr]) -> JoinOptions {
    JoinOptions {
        node_id: format!("member-{i:03}"),
        generation: 1,
        listen_addr: addr,
        advertise_addr: addr,
        seeds: seeds.iter().map(|s| s.to_string()).collect(),
        gossip_interval: Duration::from_millis(100),
        dead_member_grace: Duration::from_secs(60),
    }
}

fn addr(i: usize) -> SocketAddr {
    // In-memory addresses: nothing is bound.
    SocketAddr::from(([127, 0, 0, 1], 20_000 + i as u16))
}

async fn start(n: usize, transport: &dyn Transport) -> Vec<Cluster> {
    let mut members = Vec::new();
    for i in 0..n {
        let role = if i == 0 { Role::Lb } else { Role::Worker };
        members.push(
            Cluster::join(
                opts(i, addr(i), &[addr(0)]),
                &info(role, "worker"),
                transport,
            )
            .await
            .unwrap(),
        );
    }
    members
}

async fn wait_sizes(members: &[Cluster], n: usize, what: &str) {
    wait_until_async(what, PATIENCE, || async {
        members.iter().all(|m| m.members().len() == n).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_members_converge_through_one_well_known_member() {
    let transport = ChannelTransport::with_mtu(65_507);
    let members = start(50, &transport).await;
    wait_sizes(&members, 50, "50 members to see 50 members").await;
    let view = members[49].members();
    assert_eq!(view.iter().filter(|m| m.info.role == Role::Lb).count(), 1);
    assert!(view.iter().all(|m| m.info.domain == "wso2.as.domain"));
}

#[tokio::test(flavor = "multi_thread")]
async fn property_updates_reach_everyone() {
    let transport = ChannelTransport::with_mtu(65_507);
    let members = start(5, &transport).await;
    wait_sizes(&members, 5, "5 members to converge").await;
    members[3].set_state(MemberState::Draining).await;
    let r7 = format!("7:{}", "e".repeat(64));
    members[3].set("rev:0", &r7).await;
    wait_until_async(
        "everyone to see member-003 draining at revision 7",
        PATIENCE,
        || async {
            members
                .iter()
                .all(|c| {
                    c.members().iter().any(|m| {
                        m.node_id == "member-003"
                            && m.info.state == MemberState::Draining
                            && m.info.revisions.get(&0).map(|r| r.number) == Some(7)
                    })
                })
                .then_some(())
        },
    )
    .await;
    let mut watch = members[0].watch();
    members[2].set_state(MemberState::Starting).await;
    tokio::time::timeout(PATIENCE, watch.changed())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partition_heals() {
    let transport = ChannelTransport::with_mtu(65_507);
    let members = start(4, &transport).await;
    wait_sizes(&members, 4, "4 members to converge").await;
    // Cut member 3 off from everyone, both ways.
    for i in 0..3 {
        transport.remove_link(addr(i), addr(3)).await;
        transport.remove_link(addr(3), addr(i)).await;
    }
    wait_until_async("the others to drop member-003", PATIENCE, || async {
        members[..3]
            .iter()
            .all(|c| c.members().iter().all(|m| m.node_id != "member-003"))
            .then_some(())
    })
    .await;
    for i in 0..3 {
        transport.add_link(addr(i), addr(3)).await;
        transport.add_link(addr(3), addr(i)).await;
    }
    wait_sizes(&members, 4, "the partition to heal").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_that_leaves_is_gone_at_once() {
    let transport = ChannelTransport::with_mtu(65_507);
    let mut members = start(3, &transport).await;
    wait_sizes(&members, 3, "3 members to converge").await;
    members.pop().unwrap().leave().await;
    wait_sizes(&members, 2, "the leaver to be gone").await;
}

async fn udp_member(i: usize, secret: &[u8], seeds: &[SocketAddr]) -> (Cluster, SocketAddr) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let a = socket.local_addr().unwrap();
    let t = SealedUdpTransport::with_socket(Some(secret), socket);
    (
        Cluster::join(opts(i, a, seeds), &info(Role::Worker, "worker"), &t)
            .await
            .unwrap(),
        a,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn over_sealed_udp_only_members_with_the_secret_join() {
    let secret = b"test secret: 32 bytes or so long";
    let (a, a_addr) = udp_member(0, secret, &[]).await;
    let (b, _) = udp_member(1, secret, &[a_addr]).await;
    let (stranger, _) = udp_member(2, b"a different secret of fair length", &[a_addr]).await;
    wait_sizes(
        &[a, b],
        2,
        "the two members with the secret to see each other",
    )
    .await;
    // The stranger is never seen and never sees anyone.
    assert_eq!(stranger.members().len(), 1);
}
