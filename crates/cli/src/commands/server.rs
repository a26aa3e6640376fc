//! `wharf server`: run a node until SIGTERM or SIGINT.

use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use wharf_config::NodeConfig;

#[derive(clap::Args, Debug)]
pub struct Server {
    /// The configuration file (wharf.toml). Without one every setting has
    /// its default and the data directory is ./wharf-data.
    #[arg(long, short, env = "WHARF_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Run as a worker node (the seed's -DworkerNode=true): serve
    /// applications, accept no deployments.
    #[arg(long)]
    worker_node: bool,

    /// Deploy the example application (greeter, served at /greeter) unless
    /// something is deployed there: committed to the repository on a
    /// manager, put into the hot-deployment directory on a stand-alone
    /// node (deployment synchronizer disabled).
    #[arg(long)]
    deploy_example: bool,
}

impl Server {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let overrides = wharf_config::Overrides {
            worker_node: self.worker_node,
        };
        let config = match &self.config {
            Some(path) => NodeConfig::load_with(path, &super::config_env(), overrides),
            None => NodeConfig::defaults_with(&super::config_env(), overrides),
        }
        .map_err(|errs| anyhow::anyhow!("invalid configuration:\n{errs}"))?;
        let mut options = wharf_node::RunOptions::default();
        if self.deploy_example && config.deployment_synchronizer.enabled {
            if config.server.worker_node {
                anyhow::bail!(
                    "--deploy-example: a worker node takes its applications from the manager; \
                     deploy the example on the management node"
                );
            }
            options
                .initial_apps
                .push(("/greeter".to_string(), crate::example::GREETER.to_vec()));
        } else if self.deploy_example {
            let webapps = config.server.webapps_dir();
            if crate::example::install(&webapps)
                .with_context(|| format!("installing the example into {}", webapps.display()))?
            {
                tracing::info!(dir = %webapps.display(), "installed the example application greeter.wasm");
            }
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("wharf")
            .build()
            .context("starting the async runtime")?;
        runtime.block_on(async move {
            let listeners = wharf_node::Listeners::bind(&config.server).await?;
            let (stop, signal) = wharf_net::Shutdown::new();
            tokio::spawn(on_signals(stop));
            wharf_node::run_with(config, listeners, signal, options).await?;
            Ok::<_, anyhow::Error>(())
        })?;
        Ok(ExitCode::SUCCESS)
    }
}

/// First SIGTERM or SIGINT: graceful shutdown. A second one: exit now.
pub(crate) async fn on_signals(stop: wharf_net::Shutdown) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    let name = tokio::select! { _ = term.recv() => "SIGTERM", _ = int.recv() => "SIGINT" };
    tracing::info!(signal = name, "shutdown requested");
    stop.trigger();
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    tracing::warn!("second signal: exiting at once");
    std::process::exit(130);
}
