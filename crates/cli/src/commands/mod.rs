//! One module per subcommand.

mod admin;
mod apps;
mod client;
mod cluster;
mod cluster_up;
mod config;
mod deploy;
mod lb;
mod login;
mod server;
mod tenant;

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
    /// Deploy a component through the management node to every worker.
    Deploy(deploy::Deploy),
    /// List, undeploy and roll back applications.
    #[command(subcommand)]
    Apps(apps::Apps),
    /// Sign in to a management node's admin API.
    Login(login::Login),
    /// Sign out of a management node's admin API.
    Logout(login::Logout),
    /// Administer a management node's accounts.
    #[command(subcommand)]
    Admin(admin::Admin),
    /// Manage tenants (the super admin).
    #[command(subcommand)]
    Tenant(tenant::Tenant),
}

impl Command {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Command::Server(c) => c.run(),
            Command::Lb(c) => c.run(),
            Command::Config(c) => c.run(),
            Command::Cluster(c) => c.run(),
            Command::Deploy(c) => c.run(),
            Command::Apps(c) => c.run(),
            Command::Login(c) => c.run(),
            Command::Logout(c) => c.run(),
            Command::Admin(c) => c.run(),
            Command::Tenant(c) => c.run(),
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
