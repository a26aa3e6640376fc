//! One module per subcommand.

mod config;
mod server;

use std::process::ExitCode;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Start a node: a management node by default, a worker with --worker-node.
    Server(server::Server),
    /// Work with configuration files.
    #[command(subcommand)]
    Config(config::Config),
}

impl Command {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Command::Server(c) => c.run(),
            Command::Config(c) => c.run(),
        }
    }
}
