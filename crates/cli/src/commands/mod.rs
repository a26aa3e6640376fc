//! One module per subcommand.

mod cluster;
mod cluster_up;
mod config;
mod lb;
mod server;

use std::process::ExitCode;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Start a node: a management node by default, a worker with --worker-node.
    Server(server::Server),
    /// Start the load balancer: the cluster's public entry, routing each
    /// host (and tenant) to live members of its cluster domain.
    Lb(lb::Lb),
    /// Work with configuration files.
    #[command(subcommand)]
    Config(config::Config),
    /// Look at the cluster.
    #[command(subcommand)]
    Cluster(cluster::Cluster),
}

impl Command {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Command::Server(c) => c.run(),
            Command::Lb(c) => c.run(),
            Command::Config(c) => c.run(),
            Command::Cluster(c) => c.run(),
        }
    }
}

/// The variables configuration may take from the environment.
pub fn config_env() -> wharf_config::Env {
    const VARS: [&str; 3] = [
        wharf_config::SECRET_ENV,
        wharf_config::REPOSITORY_PASSWORD_ENV,
        wharf_config::ADMIN_PASSWORD_ENV,
    ];
    std::env::vars()
        .filter(|(k, _)| VARS.contains(&k.as_str()))
        .collect()
}
