//! A whole test cluster of real processes: the load balancer, a manager
//! with its admin API and repository, and workers that follow it, all on
//! loopback and port 0, as the seed's guide sets it up.

use crate::lb::{clustering_table_with, TestLb};
use crate::node::{TestNode, PATIENCE};
use std::path::{Path, PathBuf};

/// The seed's loadbalancer.conf, with test host names.
pub const SERVICES: &str = "services {\n  appserver {\n    domains {\n\
      wso2.as.domain { hosts mgt.as.test; sub_domain mgt; tenant_range *; }\n\
      wso2.as.domain { hosts as.test; sub_domain worker; tenant_range *; }\n\
    }\n  }\n}\n";
/// The management host of [`SERVICES`].
pub const MGT_HOST: &str = "mgt.as.test";
/// The application host of [`SERVICES`].
pub const APP_HOST: &str = "as.test";
/// The admin password test managers are given (never used outside tests).
pub const ADMIN_PASSWORD: &str = "test admin password, long enough";

pub struct TestCluster {
    bin: PathBuf,
    pub lb: TestLb,
    pub manager: TestNode,
    pub workers: Vec<TestNode>,
    /// The `[deployment_synchronizer]` table every node gets.
    sync: String,
    gossip_ms: u64,
}

impl TestCluster {
    /// Starts the load balancer, a manager and `workers` workers, each node
    /// with `sync` (a `[deployment_synchronizer]` table, plus more tables
    /// if wanted) in its configuration.
    pub fn start(bin: &Path, workers: usize, sync: &str) -> TestCluster {
        Self::start_with_gossip(bin, workers, sync, 100)
    }

    /// [`TestCluster::start`] with the nodes gossiping every `gossip_ms`
    /// (tests use a fast 100 ms; benchmarks the default 200 ms).
    pub fn start_with_gossip(
        bin: &Path,
        workers: usize,
        sync: &str,
        gossip_ms: u64,
    ) -> TestCluster {
        let lb = TestLb::start_with_gossip(bin, SERVICES, "", "", true, gossip_ms);
        let manager = Self::node(bin, &lb, "mgt", sync, false, gossip_ms);
        let mut c = TestCluster {
            bin: bin.to_path_buf(),
            lb,
            manager,
            workers: vec![],
            sync: sync.to_string(),
            gossip_ms,
        };
        for _ in 0..workers {
            c.add_worker();
        }
        c
    }

    fn node(
        bin: &Path,
        lb: &TestLb,
        sub_domain: &str,
        sync: &str,
        worker: bool,
        gossip_ms: u64,
    ) -> TestNode {
        let dir = tempfile::tempdir().expect("tempdir");
        let props = format!("[clustering.properties]\nsubDomain = \"{sub_domain}\"\n");
        let mut extra = clustering_table_with(dir.path(), &lb.wka(), gossip_ms, &props);
        extra.push('\n');
        extra.push_str(if sync.contains("[deployment_synchronizer]") {
            sync
        } else {
            "[deployment_synchronizer]\nenabled = true\n"
        });
        let args: &[&str] = if worker { &["--worker-node"] } else { &[] };
        TestNode::start_with_env(
            bin,
            dir,
            "",
            &extra,
            args,
            &[("WHARF_ADMIN_PASSWORD", ADMIN_PASSWORD)],
        )
    }

    /// Starts one more worker (a late joiner).
    pub fn add_worker(&mut self) -> &TestNode {
        let w = Self::node(
            &self.bin,
            &self.lb,
            "worker",
            &self.sync,
            true,
            self.gossip_ms,
        );
        self.workers.push(w);
        self.workers.last().expect("just added")
    }

    /// An HTTPS client for the admin API through the load balancer's
    /// management host (trusting the LB's generated certificate).
    pub fn admin_client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(&self.lb.generated_cert_pem()).expect("a PEM"),
            )
            .resolve(MGT_HOST, self.lb.https)
            .build()
            .expect("a client")
    }

    /// `https://mgt.as.test:<lb https>/api/v1<path>`.
    pub fn api(&self, path: &str) -> String {
        format!("https://{MGT_HOST}:{}/api/v1{path}", self.lb.https.port())
    }

    /// Deploys `component` at `context` as the admin, through the LB;
    /// returns the status and the JSON answer.
    pub async fn deploy(&self, context: &str, component: &[u8]) -> (u16, serde_json::Value) {
        let r = self
            .admin_client()
            .post(self.api("/apps"))
            .query(&[("context", context)])
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .body(component.to_vec())
            .send()
            .await
            .expect("the admin API answers");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or_default())
    }

    /// A call to the admin API as the admin, through the LB.
    pub async fn call(&self, method: reqwest::Method, path: &str) -> (u16, serde_json::Value) {
        let r = self
            .admin_client()
            .request(method, self.api(path))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .send()
            .await
            .expect("the admin API answers");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or_default())
    }

    /// GET `path` on the application host through the LB: status and body.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let r = reqwest::Client::new()
            .get(self.lb.url(path))
            .header("host", APP_HOST)
            .send()
            .await
            .ok()?;
        let status = r.status().as_u16();
        Some((status, r.text().await.ok()?))
    }

    /// Waits until the LB routes to `workers` ready workers and the manager,
    /// and the manager sees them too (a deploy counts the workers it sees).
    pub async fn wait_ready(&self, workers: usize) {
        let members = self.manager.status_url("/cluster/members");
        crate::wait_until_async(
            &format!("the manager to see {workers} ready workers"),
            PATIENCE,
            || async {
                let m: serde_json::Value = reqwest::get(&members).await.ok()?.json().await.ok()?;
                let ready = m
                    .as_array()?
                    .iter()
                    .filter(|x| x["role"] == "worker" && x["state"] == "ready")
                    .count();
                (ready == workers).then_some(())
            },
        )
        .await;
        let status = self.lb.status_url("/lb/routes");
        crate::wait_until_async(
            &format!("the LB to route to the manager and {workers} workers"),
            PATIENCE,
            || async {
                let routes: serde_json::Value =
                    reqwest::get(&status).await.ok()?.json().await.ok()?;
                let live = |sd: &str| {
                    routes.as_array()?.iter().find(|p| p["sub_domain"] == sd)?["live"].as_u64()
                };
                (live("mgt")? >= 1 && live("worker")? == workers as u64).then_some(())
            },
        )
        .await;
    }

    /// Waits until GET `path` through the LB answers 200 with `body`.
    pub async fn wait_body(&self, path: &str, body: &str) {
        crate::wait_until_async(
            &format!("{path} to answer {body:?} through the LB"),
            PATIENCE,
            || async {
                let (s, b) = self.get(path).await?;
                (s == 200 && b == body).then_some(())
            },
        )
        .await;
    }
}
