//! End to end: nodes as real processes joining one cluster over sealed UDP
//! on loopback.

use std::path::Path;
use wharf_testkit::{process::parse_addrs, wait_until_async, TestNode, PATIENCE};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_wharf"))
}

const SECRET: &str = "e2e test secret, long enough to pass";

/// Starts a clustered node in `dir` (created if `None`) seeded with `wka`.
fn member(
    dir: Option<tempfile::TempDir>,
    sub_domain: &str,
    wka: &[String],
    secret: &str,
    worker: bool,
) -> TestNode {
    let dir = dir.unwrap_or_else(|| tempfile::tempdir().unwrap());
    std::fs::write(dir.path().join("secret"), secret).unwrap();
    let members: Vec<String> = wka.iter().map(|m| format!("{m:?}")).collect();
    let clustering = format!(
        "[clustering]\nenabled = true\ndomain = \"wso2.as.domain\"\nlocal_member_host = \"127.0.0.1\"\n\
         local_member_port = 0\nmembers = [{}]\nsecret_file = \"secret\"\ngossip_interval_ms = 100\n\
         [clustering.properties]\nsubDomain = \"{sub_domain}\"\nbackendServerURL = \"https://${{hostName}}:${{httpsPort}}/services/\"\n",
        members.join(", ")
    );
    let args: &[&str] = if worker { &["--worker-node"] } else { &[] };
    TestNode::start_in(bin(), dir, "", &clustering, args)
}

fn gossip_addr(node: &TestNode) -> String {
    let line = node.process.wait_for_line("joining the cluster", PATIENCE);
    parse_addrs(&line)["address"].to_string()
}

async fn members(node: &TestNode) -> Vec<serde_json::Value> {
    let Ok(resp) = reqwest::get(node.status_url("/cluster/members")).await else {
        return Vec::new();
    };
    let text = resp.text().await.unwrap_or_default();
    serde_json::from_str(&text).unwrap_or_default()
}

async fn wait_members(
    node: &TestNode,
    what: &str,
    pred: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    wait_until_async(what, PATIENCE, || async {
        let m = members(node).await;
        pred(&m).then_some(m)
    })
    .await
}

fn has(members: &[serde_json::Value], addr: &str) -> bool {
    members.iter().any(|m| m["gossip_addr"] == addr)
}

#[tokio::test(flavor = "multi_thread")]
async fn members_join_fail_rejoin_and_strangers_stay_out() {
    let mgr = member(None, "mgt", &[], SECRET, false);
    let wka = vec![gossip_addr(&mgr)];
    let w1 = member(None, "worker", &wka, SECRET, true);
    let mut w2 = member(None, "worker", &wka, SECRET, true);
    let (a1, a2) = (gossip_addr(&w1), gossip_addr(&w2));

    let seen = wait_members(&mgr, "the manager to see three ready members", |m| {
        m.len() == 3 && m.iter().all(|x| x["state"] == "ready")
    })
    .await;
    let w = seen
        .iter()
        .find(|m| m["gossip_addr"] == a1.as_str())
        .unwrap();
    assert_eq!(w["role"], "worker");
    assert!(w["last_heard_ms"].is_u64(), "{w}");
    assert_eq!(w["domain"], "wso2.as.domain");
    assert_eq!(w["sub_domain"], "worker");
    let https = w1.https.port();
    assert_eq!(
        w["properties"]["backendServerURL"],
        format!("https://localhost:{https}/services/")
    );
    let m = seen.iter().find(|m| m["role"] == "manager").unwrap();
    assert_eq!(m["sub_domain"], "mgt");
    // The seed's steps 8 and 11: the logs say the node joined, and name who joined.
    w1.process.wait_for_line("joined the cluster", PATIENCE);
    let joined = mgr
        .process
        .wait_for_line(&format!("address={a1}"), PATIENCE);
    assert!(
        joined.contains("member joined")
            && joined.contains("role=worker")
            && joined.contains("sub_domain=worker"),
        "{joined}"
    );

    // `wharf cluster members` prints the same view as a table, or JSON.
    let status = mgr.status.to_string();
    let out = std::process::Command::new(bin())
        .args(["cluster", "members", "--status", &status])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    assert!(table.starts_with("ROLE"), "{table}");
    assert_eq!(
        table.lines().filter(|l| l.starts_with("worker ")).count(),
        2,
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("manager ") && l.contains("mgt")),
        "{table}"
    );
    let out = std::process::Command::new(bin())
        .args(["cluster", "members", "--status", &status, "--json"])
        .output()
        .unwrap();
    let json: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json.len(), 3);

    // A member killed without a word is dropped by every other member.
    let generation = seen
        .iter()
        .find(|m| m["gossip_addr"] == a2.as_str())
        .unwrap()["generation"]
        .clone();
    w2.process.signal("KILL");
    w2.process.wait_exit(PATIENCE);
    wait_members(&mgr, "the manager to drop the killed worker", |m| {
        m.len() == 2 && !has(m, &a2)
    })
    .await;
    wait_members(&w1, "the other worker to drop it", |m| {
        m.len() == 2 && !has(m, &a2)
    })
    .await;

    // Restarted on its data directory, it comes back as a new generation.
    let dir = std::mem::replace(&mut w2.dir, tempfile::tempdir().unwrap());
    drop(w2);
    let w2 = member(Some(dir), "worker", &wka, SECRET, true);
    let a2 = gossip_addr(&w2);
    let back = wait_members(&mgr, "the restarted worker to rejoin", |m| {
        m.len() == 3 && has(m, &a2)
    })
    .await;
    let new_generation = back
        .iter()
        .find(|m| m["gossip_addr"] == a2.as_str())
        .unwrap()["generation"]
        .clone();
    assert_ne!(new_generation, generation);

    // A member with the wrong secret never appears, and sees no one.
    let stranger = member(
        None,
        "worker",
        &wka,
        "not the cluster secret, but long",
        true,
    );
    let a3 = gossip_addr(&stranger);
    mgr.process
        .wait_for_line("dropped cluster packets", PATIENCE);
    wait_members(&stranger, "the stranger to report its own view", |m| {
        m.len() == 1
    })
    .await;
    assert!(!has(&members(&mgr).await, &a3));
    assert!(!has(&members(&w1).await, &a3));
    drop(stranger);

    // A member that stops gracefully leaves every view at once.
    w1.process.signal("TERM");
    wait_members(&mgr, "the stopped worker to be gone", |m| {
        m.len() == 2 && !has(m, &a1)
    })
    .await;
    mgr.process.wait_for_line("member left", PATIENCE);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_whose_well_known_members_are_down_joins_when_one_comes_up_and_rejoins_after_a_restart(
) {
    // Reserve a UDP port for the manager-to-be, then release it for it.
    let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let wka = vec![format!("127.0.0.1:{port}")];
    let worker = member(None, "worker", &wka, SECRET, true);
    gossip_addr(&worker);
    // Start the well-known member on that port.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), SECRET).unwrap();
    let clustering = format!(
        "[clustering]\nenabled = true\nlocal_member_host = \"127.0.0.1\"\nlocal_member_port = {port}\n\
         secret_file = \"secret\"\ngossip_interval_ms = 100\n"
    );
    let mut mgr = TestNode::start_in(bin(), dir, "", &clustering, &[]);
    wait_members(&mgr, "the worker to find the late manager", |m| {
        m.len() == 2
    })
    .await;
    wait_members(&worker, "the worker to see the manager", |m| m.len() == 2).await;

    // The well-known member dies and comes back on its port: rejoined.
    mgr.process.signal("KILL");
    mgr.process.wait_exit(PATIENCE);
    wait_members(&worker, "the worker to drop the dead manager", |m| {
        m.len() == 1
    })
    .await;
    let dir = std::mem::replace(&mut mgr.dir, tempfile::tempdir().unwrap());
    drop(mgr);
    let mgr = TestNode::start_in(bin(), dir, "", &clustering, &[]);
    wait_members(&mgr, "the restarted manager to see the worker", |m| {
        m.len() == 2
    })
    .await;
    wait_members(&worker, "the worker to see the restarted manager", |m| {
        m.len() == 2
    })
    .await;
}
