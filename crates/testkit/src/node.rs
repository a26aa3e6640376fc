//! A real `wharf server` process on port 0 in a temporary directory.

use crate::process::WharfProcess;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long tests wait for a node to start or a change to show. Generous:
/// CI machines are small and shared; nothing here is a performance claim.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub struct TestNode {
    pub dir: tempfile::TempDir,
    pub process: WharfProcess,
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub status: SocketAddr,
}

impl TestNode {
    /// Starts `bin server` with listeners on 127.0.0.1 port 0, the data
    /// directory in a fresh temporary directory, and `extra` appended to the
    /// configuration file (extra keys for `[server]` go first, then tables).
    /// The node is stand-alone, deploying from its hot-deployment directory,
    /// unless `extra` has a `[deployment_synchronizer]` table.
    pub fn start(bin: &Path, server_keys: &str, extra: &str) -> TestNode {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(bin, dir, server_keys, extra, &[])
    }

    /// Like [`TestNode::start`] in an existing directory (e.g. to restart a
    /// node on its data) and with extra command-line arguments.
    pub fn start_in(
        bin: &Path,
        dir: tempfile::TempDir,
        server_keys: &str,
        extra: &str,
        args: &[&str],
    ) -> TestNode {
        Self::start_with_env(bin, dir, server_keys, extra, args, &[])
    }

    /// Like [`TestNode::start_in`] with environment variables for the process.
    pub fn start_with_env(
        bin: &Path,
        dir: tempfile::TempDir,
        server_keys: &str,
        extra: &str,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> TestNode {
        let config = dir.path().join("wharf.toml");
        let extra = if extra.contains("[deployment_synchronizer]") {
            extra.to_string()
        } else {
            format!("{extra}\n[deployment_synchronizer]\nenabled = false\n")
        };
        let text = format!(
            "[server]\ndata_dir = \"data\"\nhot_deploy_interval_ms = 100\n{server_keys}\n\
             [server.http]\nbind = \"127.0.0.1\"\nport = 0\n\
             [server.https]\nbind = \"127.0.0.1\"\nport = 0\n\
             [server.status]\nport = 0\n{extra}"
        );
        std::fs::write(&config, text).expect("writing wharf.toml");
        let config = config.to_str().expect("utf-8 path").to_string();
        let mut all = vec!["server", "--config", config.as_str()];
        all.extend_from_slice(args);
        let name = if args.contains(&"--worker-node") {
            "wharf server (worker)"
        } else {
            "wharf server"
        };
        let process = WharfProcess::start(bin, &all, envs, name);
        let addrs = process.listening(PATIENCE);
        let get = |k: &str| {
            *addrs
                .get(k)
                .unwrap_or_else(|| panic!("no {k}= in the listening line: {addrs:?}"))
        };
        TestNode {
            http: get("http"),
            https: get("https"),
            status: get("status"),
            dir,
            process,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn webapps(&self) -> PathBuf {
        self.data_dir().join("deployment/server/webapps")
    }

    /// Puts `bytes` into the hot-deployment directory as `name`, atomically
    /// (write a hidden file, then rename), as an operator should.
    pub fn deploy(&self, name: &str, bytes: &[u8]) {
        let dir = self.webapps();
        std::fs::create_dir_all(&dir).expect("webapps dir");
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes).expect("writing artifact");
        std::fs::rename(&tmp, dir.join(name)).expect("renaming artifact");
    }

    pub fn undeploy(&self, name: &str) {
        std::fs::remove_file(self.webapps().join(name)).expect("removing artifact");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    pub fn status_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.status)
    }

    /// An HTTPS client that trusts this node's generated certificate.
    pub fn https_client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(&self.generated_cert_pem()).expect("a PEM"),
            )
            .build()
            .expect("a client")
    }

    /// The generated certificate, for clients that must trust it.
    pub fn generated_cert_pem(&self) -> Vec<u8> {
        std::fs::read(self.data_dir().join("tls/cert.pem")).expect("generated cert")
    }
}
