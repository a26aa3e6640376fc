//! The whole cluster across four network namespaces — the load balancer,
//! the manager and two workers each on its own host with its own address,
//! joined by a bridge — so nothing may assume that members share one
//! machine: gossip, the LB's routes, the LB's re-encrypted HTTPS to the
//! manager and the workers' check-outs from the manager all cross the
//! "network".
//!
//! Needs `ip` (iproute2) and the right to create namespaces (root); where
//! that is missing the test says why and does nothing else.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use wharf_testkit::cluster::{ADMIN_PASSWORD, APP_HOST, MGT_HOST, SERVICES};
use wharf_testkit::process::parse_addrs;
use wharf_testkit::{fixtures, wait_until_async, WharfProcess, PATIENCE, TEST_SECRET};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_wharf"))
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Namespaces and links made for this test, removed on drop.
struct Net {
    tag: String,
    bridge: String,
    namespaces: Vec<String>,
    subnet: String,
}

impl Net {
    fn new() -> Result<Net, String> {
        let id = std::process::id() % 100_000;
        let net = Net {
            tag: format!("w{id}"),
            bridge: format!("wbr{id}"),
            namespaces: vec![],
            subnet: format!("10.213.{}", id % 250 + 1),
        };
        ip(&["link", "add", &net.bridge, "type", "bridge"])?;
        ip(&[
            "addr",
            "add",
            &format!("{}.1/24", net.subnet),
            "dev",
            &net.bridge,
        ])?;
        ip(&["link", "set", &net.bridge, "up"])?;
        Ok(net)
    }

    /// A namespace with one address on the bridge; returns (name, address).
    fn host(&mut self, n: u8) -> Result<(String, String), String> {
        let ns = format!("{}-{n}", self.tag);
        ip(&["netns", "add", &ns])?;
        self.namespaces.push(ns.clone());
        let (outer, inner) = (format!("{}h{n}", self.tag), format!("{}n{n}", self.tag));
        ip(&[
            "link", "add", &outer, "type", "veth", "peer", "name", &inner,
        ])?;
        ip(&["link", "set", &inner, "netns", &ns])?;
        ip(&["link", "set", &outer, "master", &self.bridge, "up"])?;
        let addr = format!("{}.{}", self.subnet, 10 + n);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            &inner,
        ])?;
        ip(&["-n", &ns, "link", "set", &inner, "up"])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        Ok((ns, addr))
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = ip(&["netns", "del", ns]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}

/// Runs `wharf args…` inside namespace `ns`.
fn start_in(ns: &str, args: &[&str], env: &[(&str, &str)], name: &str) -> WharfProcess {
    let bin = bin().to_str().unwrap().to_string();
    let mut all = vec!["netns", "exec", ns, bin.as_str()];
    all.extend_from_slice(args);
    WharfProcess::start(Path::new("ip"), &all, env, name)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_across_network_namespaces_deploys_and_serves() {
    let mut net = match Net::new() {
        Ok(n) => n,
        Err(e) => {
            println!("SKIPPED: cannot create network namespaces here ({e})");
            return;
        }
    };
    let hosts: Vec<(String, String)> = match (0..4).map(|n| net.host(n)).collect() {
        Ok(h) => h,
        Err(e) => {
            println!("SKIPPED: cannot create network namespaces here ({e})");
            return;
        }
    };
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    for d in &dirs {
        std::fs::write(d.path().join("secret"), TEST_SECRET).unwrap();
    }

    // The load balancer on host 0.
    let (lb_ns, lb_ip) = &hosts[0];
    write(dirs[0].path(), "loadbalancer.conf", SERVICES);
    let lb_toml = write(
        dirs[0].path(),
        "lb.toml",
        &format!(
            "[lb]\ndata_dir = \"data\"\nservices_file = \"loadbalancer.conf\"\n\
             [lb.http]\nbind = \"{lb_ip}\"\nport = 0\n[lb.https]\nbind = \"{lb_ip}\"\nport = 0\n\
             [lb.status]\nbind = \"{lb_ip}\"\nport = 0\n\
             [clustering]\nenabled = true\ndomain = \"wso2.as.domain\"\nlocal_member_host = \"{lb_ip}\"\n\
             local_member_port = 4000\nsecret_file = \"secret\"\ngossip_interval_ms = 100\n"
        ),
    );
    let lb = start_in(
        lb_ns,
        &["lb", "--config", lb_toml.to_str().unwrap()],
        &[],
        "lb",
    );
    let addrs = lb.listening(PATIENCE);
    let (lb_http, lb_https, lb_status): (SocketAddr, SocketAddr, SocketAddr) =
        (addrs["http"], addrs["https"], addrs["status"]);
    let wka = format!("{lb_ip}:4000");

    // The manager on host 1, the workers on hosts 2 and 3.
    let mut nodes = vec![];
    for (i, role) in [(1, "mgt"), (2, "worker"), (3, "worker")] {
        let (ns, addr) = &hosts[i];
        let config = write(
            dirs[i].path(),
            "wharf.toml",
            &format!(
                "[server]\ndata_dir = \"data\"\nhost_name = \"{APP_HOST}\"\nmgt_host_name = \"{MGT_HOST}\"\n\
                 [server.http]\nbind = \"{addr}\"\nport = 0\n[server.https]\nbind = \"{addr}\"\nport = 0\n\
                 [server.status]\nbind = \"{addr}\"\nport = 0\n\
                 [clustering]\nenabled = true\ndomain = \"wso2.as.domain\"\nlocal_member_host = \"{addr}\"\n\
                 local_member_port = 4100\nmembers = [\"{wka}\"]\nsecret_file = \"secret\"\ngossip_interval_ms = 100\n\
                 [clustering.properties]\nsubDomain = \"{role}\"\n"
            ),
        );
        let mut args = vec!["server", "--config", config.to_str().unwrap()];
        if role == "worker" {
            args.push("--worker-node");
        }
        let name = format!("{role}@{addr}");
        nodes.push(start_in(
            ns,
            &args,
            &[("WHARF_ADMIN_PASSWORD", ADMIN_PASSWORD)],
            &name,
        ));
    }
    for n in &nodes {
        n.listening(PATIENCE);
    }

    // The LB sees the manager and both workers, each at its own address.
    let routes_url = format!("http://{lb_status}/lb/routes");
    wait_until_async(
        "the LB to route to the manager and two workers",
        PATIENCE,
        || async {
            let routes: serde_json::Value =
                reqwest::get(&routes_url).await.ok()?.json().await.ok()?;
            let live = |sd: &str| {
                routes.as_array()?.iter().find(|p| p["sub_domain"] == sd)?["live"].as_u64()
            };
            (live("mgt")? == 1 && live("worker")? == 2).then_some(())
        },
    )
    .await;

    // Deploy through the LB's management host (HTTPS, re-encrypted to the
    // manager); both workers check it out from the manager across hosts.
    let cert = std::fs::read(dirs[0].path().join("data/tls/cert.pem")).unwrap();
    let admin = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&cert).unwrap())
        .resolve(MGT_HOST, lb_https)
        .build()
        .unwrap();
    let r = admin
        .post(format!(
            "https://{MGT_HOST}:{}/api/v1/apps?context=/hello",
            lb_https.port()
        ))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .body(fixtures::says("across hosts\n"))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["rollout"]["complete"], true, "{body}");
    let workers: Vec<String> = body["rollout"]["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["node_id"].as_str().unwrap().to_string())
        .collect();
    for (_, addr) in &hosts[2..] {
        assert!(
            workers.iter().any(|w| w.contains(addr.as_str())),
            "{workers:?}"
        );
    }

    // Served through the LB's worker host.
    let client = reqwest::Client::new();
    for _ in 0..20 {
        let r = client
            .get(format!("http://{lb_http}/hello"))
            .header("host", APP_HOST)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "across hosts\n");
    }
    // Each worker checked revision 1 out, and gossips from its own address.
    for (n, (_, addr)) in nodes.iter().zip(&hosts[1..]).skip(1) {
        let line = n.wait_for_line("serving revision", PATIENCE);
        assert!(line.contains("revision=1"), "{line}");
        let joined = n.wait_for_line("joining the cluster", PATIENCE);
        assert_eq!(parse_addrs(&joined)["address"].ip().to_string(), *addr);
    }
    drop(nodes);
    drop(lb);
    drop(net);
}
