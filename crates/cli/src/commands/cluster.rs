//! `wharf cluster members`: the members a node sees; `wharf cluster up`
//! is in `cluster_up.rs`.

use anyhow::Context;
use std::process::ExitCode;

#[derive(clap::Subcommand, Debug)]
pub enum Cluster {
    /// Start a whole cluster on this machine: a load balancer, a manager
    /// and workers (separate processes), serving the example application,
    /// until Ctrl-C.
    Up(super::cluster_up::Up),
    /// List the cluster's members (role, domain, sub-domain, state, URLs,
    /// revision, last heard) as a node sees them, by asking its status listener.
    Members {
        /// The node's status listener, host:port (server.status, 127.0.0.1:9900 by default).
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9900")]
        status: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

impl Cluster {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let (status, json) = match self {
            Cluster::Up(up) => return up.run(),
            Cluster::Members { status, json } => (status, json),
        };
        let url = format!("http://{status}/cluster/members");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (code, body) = rt.block_on(async {
            let resp = reqwest::get(&url)
                .await
                .with_context(|| format!("asking {url}"))?;
            anyhow::Ok((resp.status(), resp.text().await?))
        })?;
        if !code.is_success() {
            anyhow::bail!("{url} answered {code}: {}", body.trim());
        }
        let members: Vec<serde_json::Value> =
            serde_json::from_str(&body).context("reading the member list")?;
        if json {
            println!("{}", serde_json::to_string_pretty(&members)?);
            return Ok(ExitCode::SUCCESS);
        }
        let field = |m: &serde_json::Value, k: &str| match &m[k] {
            serde_json::Value::Null => "-".to_string(),
            serde_json::Value::String(s) if s.is_empty() => "-".to_string(),
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let cols = [
            "role",
            "domain",
            "sub_domain",
            "state",
            "http_url",
            "https_url",
            "revision",
            "gossip_addr",
            "last_heard_ms",
            "node_id",
        ];
        let rows: Vec<Vec<String>> = members
            .iter()
            .map(|m| cols.iter().map(|c| field(m, c)).collect())
            .collect();
        let widths: Vec<usize> = cols
            .iter()
            .enumerate()
            .map(|(i, c)| {
                rows.iter()
                    .map(|r| r[i].len())
                    .chain([c.len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: Vec<String>| {
            cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        };
        println!("{}", line(cols.iter().map(|c| c.to_uppercase()).collect()));
        for r in rows {
            println!("{}", line(r));
        }
        Ok(ExitCode::SUCCESS)
    }
}
