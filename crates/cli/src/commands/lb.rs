//! `wharf lb`: run the load balancer until SIGTERM or SIGINT; SIGHUP
//! reloads its configuration.

use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Lb {
    /// The load balancer's configuration (lb.toml). Without one every
    /// setting has its default.
    #[arg(long, short, env = "WHARF_LB_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// The seed's loadbalancer.conf: which hosts go to which cluster
    /// domain and sub-domain. Overrides `lb.services_file`.
    #[arg(long, value_name = "FILE")]
    services: Option<PathBuf>,

    /// Validate the configuration (and the loadbalancer.conf), print what
    /// is wrong or "ok", and exit.
    #[arg(long)]
    check: bool,
}

impl Lb {
    fn load(&self) -> Result<wharf_lb::Loaded, String> {
        wharf_lb::load(
            self.config.as_deref(),
            self.services.as_deref(),
            &super::config_env(),
        )
    }

    pub fn run(self) -> anyhow::Result<ExitCode> {
        if self.check {
            return Ok(match self.load() {
                Ok(loaded) => {
                    for w in &loaded.warnings {
                        println!("warning: {w}");
                    }
                    println!(
                        "ok: {} service(s) from {}",
                        loaded.services.services.len(),
                        loaded.services_source
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    println!("{e}");
                    ExitCode::FAILURE
                }
            });
        }
        let loaded = self
            .load()
            .map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("wharf-lb")
            .build()
            .context("starting the async runtime")?;
        runtime.block_on(async move {
            let listeners = wharf_lb::Listeners::bind(&loaded.config.lb).await?;
            let (stop, signal) = wharf_net::Shutdown::new();
            tokio::spawn(super::server::on_signals(stop));
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            tokio::spawn(on_hangup(self, tx));
            wharf_lb::run(loaded, listeners, signal, rx).await?;
            Ok::<_, anyhow::Error>(())
        })?;
        Ok(ExitCode::SUCCESS)
    }
}

/// Each SIGHUP re-reads the configuration; a bad one is refused and the
/// running one keeps serving.
async fn on_hangup(lb: Lb, tx: tokio::sync::mpsc::Sender<Result<wharf_lb::Loaded, String>>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::error!("cannot install the SIGHUP handler; reloads are disabled");
        return;
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the configuration");
        if tx.send(lb.load()).await.is_err() {
            return;
        }
    }
}
