//! A real `wharf lb` process on port 0, and clustered nodes around it.

use crate::node::{TestNode, PATIENCE};
use crate::process::{parse_addrs, WharfProcess};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A shared secret for test clusters (never used outside tests).
pub const TEST_SECRET: &str = "wharf test cluster secret, long enough";

pub struct TestLb {
    pub dir: tempfile::TempDir,
    pub process: WharfProcess,
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub status: SocketAddr,
    /// The LB's gossip address, when clustering is on: the well-known
    /// member for the nodes.
    pub gossip: Option<String>,
}

/// The `[clustering]` table of a test member: loopback, port 0, fast
/// gossip, the test secret in a file in `dir`.
pub fn clustering_table(dir: &Path, wka: &[String], extra: &str) -> String {
    clustering_table_with(dir, wka, 100, extra)
}

/// [`clustering_table`] with another gossip interval.
pub fn clustering_table_with(dir: &Path, wka: &[String], gossip_ms: u64, extra: &str) -> String {
    std::fs::write(dir.join("secret"), TEST_SECRET).expect("writing the secret");
    let members: Vec<String> = wka.iter().map(|m| format!("{m:?}")).collect();
    format!(
        "[clustering]\nenabled = true\ndomain = \"wso2.as.domain\"\nlocal_member_host = \"127.0.0.1\"\n\
         local_member_port = 0\nmembers = [{}]\nsecret_file = \"secret\"\ngossip_interval_ms = {gossip_ms}\n{extra}",
        members.join(", ")
    )
}

impl TestLb {
    /// Starts `bin lb` with `services` as its loadbalancer.conf, `lb_keys`
    /// added to `[lb]`, `tables` appended (e.g. `[lb.https]` keys), and
    /// clustering on (seeded by nobody: the nodes name the LB) unless
    /// `clustered` is false.
    pub fn start(
        bin: &Path,
        services: &str,
        lb_keys: &str,
        tables: &str,
        clustered: bool,
    ) -> TestLb {
        Self::start_with_gossip(bin, services, lb_keys, tables, clustered, 100)
    }

    /// [`TestLb::start`] gossiping every `gossip_ms`.
    pub fn start_with_gossip(
        bin: &Path,
        services: &str,
        lb_keys: &str,
        tables: &str,
        clustered: bool,
        gossip_ms: u64,
    ) -> TestLb {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("loadbalancer.conf"), services)
            .expect("writing loadbalancer.conf");
        let clustering = if clustered {
            clustering_table_with(dir.path(), &[], gossip_ms, "")
        } else {
            "[clustering]\nenabled = false\n".to_string()
        };
        let text = format!(
            "[lb]\ndata_dir = \"data\"\nservices_file = \"loadbalancer.conf\"\n{lb_keys}\n\
             [lb.http]\nbind = \"127.0.0.1\"\nport = 0\n\
             [lb.status]\nport = 0\n{tables}\n{clustering}"
        );
        let text = if text.contains("[lb.https]") {
            text
        } else {
            format!("{text}\n[lb.https]\nbind = \"127.0.0.1\"\nport = 0\n")
        };
        std::fs::write(dir.path().join("lb.toml"), text).expect("writing lb.toml");
        let config = dir.path().join("lb.toml");
        let process = WharfProcess::start(
            bin,
            &["lb", "--config", config.to_str().expect("utf-8 path")],
            &[],
            "wharf lb",
        );
        let addrs = process.listening(PATIENCE);
        let get = |k: &str| {
            *addrs
                .get(k)
                .unwrap_or_else(|| panic!("no {k}= in the listening line: {addrs:?}"))
        };
        let gossip = clustered.then(|| {
            let line = process.wait_for_line("joining the cluster", PATIENCE);
            parse_addrs(&line)["address"].to_string()
        });
        TestLb {
            http: get("http"),
            https: get("https"),
            status: get("status"),
            gossip,
            dir,
            process,
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("lb.toml")
    }

    pub fn services_path(&self) -> PathBuf {
        self.dir.path().join("loadbalancer.conf")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    pub fn status_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.status)
    }

    /// The generated certificate, for clients that must trust it.
    pub fn generated_cert_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("data/tls/cert.pem")).expect("generated cert")
    }

    /// The well-known members list that makes a node join this LB.
    pub fn wka(&self) -> Vec<String> {
        self.gossip.iter().cloned().collect()
    }
}

impl TestNode {
    /// A node in the test cluster (domain `wso2.as.domain`, sub-domain
    /// `sub_domain`), seeded with `wka`; a worker if `worker`.
    pub fn clustered(bin: &Path, sub_domain: &str, wka: &[String], worker: bool) -> TestNode {
        let dir = tempfile::tempdir().expect("tempdir");
        let props = format!("[clustering.properties]\nsubDomain = \"{sub_domain}\"\n");
        let clustering = clustering_table(dir.path(), wka, &props);
        let args: &[&str] = if worker { &["--worker-node"] } else { &[] };
        TestNode::start_in(bin, dir, "", &clustering, args)
    }
}
