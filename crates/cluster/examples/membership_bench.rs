//! Membership benchmark: convergence and failure-detection times over real,
//! sealed UDP on loopback. Run through `bench/membership.sh`.
//!
//!   membership_bench [RUNS] [GOSSIP_MS]

use std::time::{Duration, Instant};
use wharf_cluster::transport::SealedUdpTransport;
use wharf_cluster::{Cluster, JoinOptions, MemberInfo, MemberState, Role};

const SECRET: &[u8] = b"benchmark secret, long enough....";
/// The time Carbon's Tribes membership takes to drop a silent member
/// (its default member drop time).
const TRIBES_DROP: Duration = Duration::from_secs(3);

fn info() -> MemberInfo {
    MemberInfo::new(
        Role::Worker,
        "wso2.as.domain",
        Some("worker"),
        MemberState::Ready,
    )
}

async fn wait(
    members: &[Cluster],
    limit: Duration,
    pred: impl Fn(&Cluster) -> bool,
) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if members.iter().all(&pred) {
            return Some(t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

async fn one_run(n: usize, gossip: Duration) -> (Duration, Duration, usize) {
    let mut members = Vec::new();
    let mut seed = None;
    let t0 = Instant::now();
    for i in 0..n {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let seeds = seed
            .map(|s: std::net::SocketAddr| vec![s.to_string()])
            .unwrap_or_default();
        seed.get_or_insert(addr);
        let opts = JoinOptions {
            node_id: format!("m{i:03}"),
            generation: 1,
            listen_addr: addr,
            advertise_addr: addr,
            seeds,
            gossip_interval: gossip,
            dead_member_grace: Duration::from_secs(60),
        };
        let t = SealedUdpTransport::with_socket(Some(SECRET), socket);
        members.push(Cluster::join(opts, &info(), &t).await.unwrap());
    }
    let limit = Duration::from_secs(60);
    // Convergence counts from the first member's start until every member
    // sees all n.
    wait(&members, limit, |c| c.members().len() == n)
        .await
        .expect("converges");
    let converged = t0.elapsed();
    // A steady cluster: count views that lose a member nobody killed.
    let steady = Instant::now();
    let mut false_downs = 0;
    while steady.elapsed() < gossip * 15 {
        false_downs += members.iter().filter(|c| c.members().len() < n).count();
        tokio::time::sleep(gossip / 2).await;
    }
    let victim = members.pop().unwrap();
    let gone = victim
        .members()
        .iter()
        .find(|m| m.node_id == format!("m{:03}", n - 1))
        .unwrap()
        .node_id
        .clone();
    victim.kill();
    let detected = wait(&members, limit, |c| {
        c.members().iter().all(|m| m.node_id != gone)
    })
    .await
    .expect("detects");
    for m in &members {
        m.kill();
    }
    (converged, detected, false_downs)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(5);
    let gossip = Duration::from_millis(args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200));
    println!("sealed UDP on loopback, gossip every {gossip:?}, median of {runs} runs");
    println!(
        "{:>8} {:>16} {:>22} {:>18} {:>8} {:>12}",
        "members",
        "convergence",
        "detection after kill",
        "Tribes drop time",
        "ratio",
        "false downs"
    );
    for n in [10, 50, 100] {
        let mut conv = Vec::new();
        let mut det = Vec::new();
        let mut false_downs = 0;
        for _ in 0..runs {
            let (c, d, f) = one_run(n, gossip).await;
            conv.push(c);
            det.push(d);
            false_downs += f;
        }
        let (c, d) = (median(conv), median(det));
        println!(
            "{n:>8} {:>16} {:>22} {:>18} {:>7.2}x {false_downs:>12}",
            format!("{:.0} ms", c.as_secs_f64() * 1000.0),
            format!("{:.0} ms", d.as_secs_f64() * 1000.0),
            format!("{:.0} ms", TRIBES_DROP.as_secs_f64() * 1000.0),
            d.as_secs_f64() / TRIBES_DROP.as_secs_f64()
        );
    }
}
