//! The Wharf node (`wharf server`): serves WebAssembly applications over
//! HTTP and HTTPS, deploys them from the hot-deployment directory, and
//! reports health and metrics on a status listener.
//!
//! A node is a manager (the default) or a worker (`--worker-node`), as in
//! the seed's management/worker split. Both serve applications today; the
//! admin API and console (manager) and synchronized revisions (worker) build
//! on [`Node::apps`], which is swapped whole on every change.

pub mod admin;
pub mod apps;
mod console;
mod hotdeploy;
mod membership;
pub mod metrics;
mod service;
mod status;
mod sync;
pub mod tenants;
pub mod urls;

use apps::Served;
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use wharf_config::{NodeConfig, ServerConfig};
use wharf_net::{ServeOptions, ShutdownSignal};
use wharf_runtime::{App, Runtime, Scheme};

pub use service::error_response;

/// Errors that stop a node from starting.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot listen on {addr} (server.{listener}): {source}")]
    Bind {
        listener: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] wharf_net::tls::TlsError),
    #[error(transparent)]
    Runtime(#[from] wharf_runtime::SetupError),
    #[error("{0}")]
    Cluster(String),
    #[error("deployment synchronizer: {0}")]
    Repository(#[from] wharf_deploy::RepoError),
    #[error("admin accounts: {0}")]
    Users(#[from] admin::users::UsersError),
    #[error("tenants: {0}")]
    Tenants(#[from] admin::tenant_store::TenantError),
}

/// The node's lifecycle, as the status listener (and later the cluster) reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum NodeState {
    Starting = 0,
    Ready = 1,
    Draining = 2,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Starting => "starting",
            NodeState::Ready => "ready",
            NodeState::Draining => "draining",
        }
    }
}

/// The three listeners of a node, bound before the node is built so the
/// caller (a test, the CLI) knows the real addresses and can bind port 0.
pub struct Listeners {
    pub http: TcpListener,
    pub https: TcpListener,
    pub status: TcpListener,
}

impl Listeners {
    pub async fn bind(cfg: &ServerConfig) -> Result<Listeners, NodeError> {
        async fn one(listener: &'static str, addr: SocketAddr) -> Result<TcpListener, NodeError> {
            TcpListener::bind(addr)
                .await
                .map_err(|source| NodeError::Bind {
                    listener,
                    addr,
                    source,
                })
        }
        Ok(Listeners {
            http: one("http", cfg.http_addr()).await?,
            https: one("https", cfg.https_addr()).await?,
            status: one("status", cfg.status_addr()).await?,
        })
    }
}

/// Where a node's listeners are bound.
#[derive(Clone, Copy, Debug)]
pub struct BoundAddrs {
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub status: SocketAddr,
}

/// A running node's shared state.
pub struct Node {
    pub config: NodeConfig,
    pub runtime: Runtime,
    /// The applications served now; replaced whole on every change.
    pub apps: ArcSwap<Served<App>>,
    pub metrics: metrics::Metrics,
    pub urls: urls::Urls,
    /// The addresses the listeners really bound.
    pub bound: BoundAddrs,
    /// SHA-256 of the certificate the HTTPS listener presents.
    pub tls_sha256: String,
    registry: prometheus_client::registry::Registry,
    state: AtomicU8,
    state_tx: tokio::sync::watch::Sender<NodeState>,
    /// Set once the node has joined its cluster (when clustering is enabled).
    pub cluster: std::sync::OnceLock<Arc<wharf_cluster::Cluster>>,
    /// A manager's artifact repository (none on workers and stand-alone nodes).
    pub repository: Option<wharf_deploy::Repository>,
    /// What members present to each other's HTTPS endpoints, from the
    /// cluster secret (none without one).
    member_token: Option<String>,
    /// Revisions are applied one at a time.
    apply_lock: tokio::sync::Mutex<()>,
    /// A manager's admin accounts and sessions.
    admin: Option<admin::auth::Auth>,
    /// A manager's tenants (the record; `tenants` is what is served).
    tenant_store: Option<admin::tenant_store::TenantStore>,
    /// The tenants this node serves: a manager's active ones, or what a
    /// worker's manager publishes.
    pub tenants: ArcSwap<tenants::Directory>,
    /// The tenant domains this node has published (a manager).
    published_tenants: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// A manager's minute of application counters, for the console's rates.
    pub(crate) rates: console::rates::Rates,
}

impl Node {
    /// The requests and 5xx answers of each application this node serves,
    /// by tenant, since it loaded them.
    pub(crate) fn app_counts(
        &self,
    ) -> std::collections::BTreeMap<wharf_proto::TenantId, wharf_proto::gossip::AppCounts> {
        self.apps
            .load()
            .tenants()
            .map(|(tenant, apps)| {
                let counts = apps
                    .table
                    .iter()
                    .map(|(c, a)| (c.to_string(), a.stats.get()))
                    .collect();
                (tenant, counts)
            })
            .collect()
    }

    pub fn state(&self) -> NodeState {
        match self.state.load(Ordering::Acquire) {
            0 => NodeState::Starting,
            1 => NodeState::Ready,
            _ => NodeState::Draining,
        }
    }

    fn set_state(&self, s: NodeState) {
        let old = self.state.swap(s as u8, Ordering::AcqRel);
        self.state_tx.send_replace(s);
        if old != s as u8 {
            tracing::info!(state = %s.as_str(), "node state changed");
        }
    }

    fn mark_initial_deploy_done(&self) {
        if self.state() == NodeState::Starting {
            self.set_state(NodeState::Ready);
        }
    }

    /// The tenants this node keeps revisions of: the super tenant and
    /// every tenant it serves.
    pub fn tenant_ids(&self) -> Vec<wharf_proto::TenantId> {
        let mut ids: Vec<_> = std::iter::once(wharf_proto::SUPER_TENANT)
            .chain(self.tenants.load().ids())
            .collect();
        ids.sort_unstable();
        ids
    }

    pub fn role(&self) -> &'static str {
        if self.config.server.worker_node {
            "worker"
        } else {
            "manager"
        }
    }
}

/// Shown once, on standard output and not in the log: the admin password
/// a manager made up on its first start.
fn show_generated_password(password: &str, file: &std::path::Path) {
    let line = "=".repeat(72);
    println!(
        "{line}\n  Wharf admin password (shown only this once): {password}\n  \
         user: admin   sign in: wharf login   change it: wharf admin passwd\n{line}"
    );
    tracing::info!(
        file = %file.display(),
        "generated the admin password; it was printed once on standard output"
    );
}

/// Starts whatever puts applications on this node: the synchronizer
/// (manager: its repository's head; worker: the revisions it checks out)
/// or, when that is disabled, the hot-deployment directory.
fn start_deployments(
    node: &Arc<Node>,
    deployment_dir: &std::path::Path,
    shutdown: &ShutdownSignal,
    options: RunOptions,
) -> Result<tokio::task::JoinHandle<()>, NodeError> {
    let sync = &node.config.deployment_synchronizer;
    let webapps = node.config.server.webapps_dir();
    if !sync.enabled {
        tracing::info!(dir = %webapps.display(), "deployment synchronizer disabled: deploying from the hot-deployment directory");
        let deployer =
            hotdeploy::HotDeployer::new(node.clone()).map_err(|source| NodeError::DataDir {
                path: webapps.display().to_string(),
                source,
            })?;
        return Ok(tokio::spawn(deployer.run(shutdown.clone())));
    }
    let ignored = std::fs::read_dir(&webapps)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".wasm"))
                .count()
        })
        .unwrap_or(0);
    if ignored > 0 {
        tracing::warn!(dir = %webapps.display(), files = ignored, "the hot-deployment directory is not used while the deployment synchronizer is enabled; deploy with `wharf deploy` instead");
    }
    if let Some(repo) = node.repository.clone() {
        tracing::info!(repository = repo.kind(), auto_commit = sync.auto_commit, "management node: serving the repository's current revision; deploy through the admin API");
        return Ok(tokio::spawn(sync::manager::run(
            node.clone(),
            repo,
            options.initial_apps,
            shutdown.clone(),
        )));
    }
    let local = wharf_deploy::LocalStore::open(&deployment_dir.join("checkout"))?;
    if !sync.auto_checkout {
        tracing::warn!("deployment_synchronizer.auto_checkout is false: serving the local copy only, following no revisions");
    }
    let source = wharf_deploy::Source::open(sync, deployment_dir, node.member_token.clone())?;
    if matches!(source, wharf_deploy::Source::Builtin(_)) && !node.config.clustering.enabled {
        tracing::warn!("worker node with the builtin repository but without clustering: it cannot find the manager and serves its local copy only");
    }
    tracing::info!(
        repository = source.kind(),
        "worker node: following the manager's revisions"
    );
    let follower = sync::follow::Follower::new(node.clone(), source, local);
    Ok(tokio::spawn(
        follower.run(shutdown.clone(), sync.auto_checkout),
    ))
}

/// What a node is started with besides its configuration.
#[derive(Debug, Default)]
pub struct RunOptions {
    /// Applications a manager deploys at start, each unless something is
    /// deployed at its context already: `(context, component)`.
    pub initial_apps: Vec<(String, Vec<u8>)>,
}

/// Runs a node on `listeners` until `shutdown` fires, then drains: stops
/// accepting, lets in-flight requests finish within the grace period, and
/// returns.
pub async fn run(
    config: NodeConfig,
    listeners: Listeners,
    shutdown: ShutdownSignal,
) -> Result<(), NodeError> {
    run_with(config, listeners, shutdown, RunOptions::default()).await
}

/// [`run`] with [`RunOptions`].
pub async fn run_with(
    config: NodeConfig,
    listeners: Listeners,
    shutdown: ShutdownSignal,
    options: RunOptions,
) -> Result<(), NodeError> {
    let data_dir = &config.server.data_dir;
    std::fs::create_dir_all(data_dir).map_err(|source| NodeError::DataDir {
        path: data_dir.display().to_string(),
        source,
    })?;

    let (tls, tls_sha256) = {
        let s = &config.server;
        let ck = match (&s.https.cert, &s.https.key) {
            (Some(cert), Some(key)) => wharf_net::tls::load_pem(cert, key)?,
            _ => {
                let names = wharf_net::tls::default_names(&[&s.host_name, &s.mgt_host_name]);
                wharf_net::tls::load_or_generate(&data_dir.join("tls"), &names)?
            }
        };
        let pin = wharf_net::tls::cert_sha256(&ck);
        (TlsAcceptor::from(wharf_net::tls::server_config(ck)?), pin)
    };

    let sync = &config.deployment_synchronizer;
    let deployment_dir = data_dir.join("deployment");
    let is_manager = !config.server.worker_node;
    let repository = if sync.enabled && is_manager {
        Some(wharf_deploy::Repository::open(
            sync,
            data_dir,
            &deployment_dir,
        )?)
    } else {
        None
    };
    let admin = if is_manager {
        let users = admin::users::UserStore::open(data_dir);
        if let Some(password) =
            users.ensure_super_admin(config.admin.password_from_env.as_deref())?
        {
            show_generated_password(&password, users.path());
        }
        Some(admin::auth::Auth::new(users, config.admin.session_ttl))
    } else {
        None
    };
    let tenant_store = if is_manager {
        Some(admin::tenant_store::TenantStore::open(data_dir)?)
    } else {
        None
    };
    let member_token = config
        .clustering
        .secret
        .as_deref()
        .map(wharf_cluster::seal::member_token);

    let mut registry = prometheus_client::registry::Registry::with_prefix("wharf");
    let runtime = Runtime::new(&config.runtime, &mut registry)?;
    let metrics = metrics::Metrics::register(&mut registry);
    let addr = |l: &TcpListener| l.local_addr().expect("a bound listener has an address");
    let (http_addr, https_addr, status_addr) = (
        addr(&listeners.http),
        addr(&listeners.https),
        addr(&listeners.status),
    );
    let node = Arc::new(Node {
        urls: urls::Urls::new(&config.server, http_addr.port(), https_addr.port()),
        bound: BoundAddrs {
            http: http_addr,
            https: https_addr,
            status: status_addr,
        },
        tls_sha256,
        config,
        runtime,
        apps: ArcSwap::from_pointee(Served::default()),
        metrics,
        registry,
        state: AtomicU8::new(NodeState::Starting as u8),
        state_tx: tokio::sync::watch::channel(NodeState::Starting).0,
        cluster: std::sync::OnceLock::new(),
        repository,
        member_token,
        apply_lock: tokio::sync::Mutex::new(()),
        admin,
        tenant_store,
        tenants: ArcSwap::from_pointee(tenants::Directory::default()),
        published_tenants: Default::default(),
        rates: Default::default(),
    });
    node.load_tenants();
    tracing::info!(
        role = %node.role(),
        http = %http_addr,
        https = %https_addr,
        status = %status_addr,
        host_name = %node.config.server.host_name,
        data_dir = %node.config.server.data_dir.display(),
        "node listening"
    );

    if node.config.server.worker_node {
        tracing::info!("worker node: no management console and no admin API here; they are on the management node");
    } else {
        tracing::info!(console = %format!("{}/console/", node.urls.mgt_https_base()), "management console");
    }
    if node.config.clustering.enabled {
        let cluster = Arc::new(membership::join(&node).await?);
        tokio::spawn(membership::follow_state(
            cluster.clone(),
            node.state_tx.subscribe(),
        ));
        tokio::spawn(membership::publish_stats(
            node.clone(),
            cluster.clone(),
            shutdown.clone(),
        ));
        let _ = node.cluster.set(cluster);
        node.publish_tenants().await;
    }
    if !node.config.server.worker_node {
        // The console's requests per second over the last minute.
        tokio::spawn(console::rates::sample(node.clone(), shutdown.clone()));
    }

    let deploy_task = start_deployments(&node, &deployment_dir, &shutdown, options)?;

    let grace = node.config.server.shutdown_grace;
    let app_server = |listener, tls: Option<TlsAcceptor>, name, scheme: Scheme| {
        let node = node.clone();
        let opts = ServeOptions::new(name, tls, grace);
        tokio::spawn(wharf_net::serve(
            listener,
            opts,
            move |req, peer| service::handle(node.clone(), req, scheme.clone(), peer),
            shutdown.clone(),
        ))
    };
    let http = app_server(listeners.http, None, "http", Scheme::Http);
    let https = app_server(listeners.https, Some(tls), "https", Scheme::Https);
    // The status listener outlives the application listeners, so that a
    // load balancer polling /health/ready sees `draining` while requests finish.
    let (stop_status, status_signal) = wharf_net::Shutdown::new();
    let status = {
        let node = node.clone();
        let opts = ServeOptions::new("status", None, grace);
        tokio::spawn(wharf_net::serve(
            listeners.status,
            opts,
            move |req, _| status::handle(node.clone(), req),
            status_signal,
        ))
    };

    let mut stop = shutdown.clone();
    stop.wait().await;
    node.set_state(NodeState::Draining);
    tracing::info!(
        grace_ms = grace.as_millis() as u64,
        "shutting down: no new connections; finishing requests in flight"
    );
    let (h, s) = tokio::join!(http, https);
    let cut = h.unwrap_or(0) + s.unwrap_or(0);
    if let Some(cluster) = node.cluster.get() {
        cluster.leave().await;
        tracing::info!("left the cluster");
    }
    stop_status.trigger();
    let _ = status.await;
    let _ = deploy_task.await;
    if cut > 0 {
        tracing::warn!(
            connections = cut,
            "stopped with connections still open after the grace period"
        );
    }
    tracing::info!("node stopped");
    Ok(())
}
