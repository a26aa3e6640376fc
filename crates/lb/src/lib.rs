//! The Wharf load balancer (`wharf lb`): the seed's Elastic Load Balancer.
//! It reads the seed's loadbalancer.conf, learns the members of each
//! cluster domain and sub-domain from cluster membership, and proxies each
//! request to a live, ready member of the domain its Host (and tenant)
//! maps to.
//!
//! Code map: [`routes`] (Host → service → domain/sub-domain), [`pool`]
//! (members per domain/sub-domain and picking one), [`proxy`] (forwarding,
//! retries, upgrades), [`headers`], [`body`], [`health`] (active checks),
//! [`access`] (the access log), [`metrics`], [`status`] (health and metrics
//! listener). Routes and settings are swapped whole on reload; pools are
//! swapped whole when the cluster view changes.

pub mod access;
pub mod body;
mod fast;
pub mod headers;
mod health;
pub mod metrics;
pub mod pool;
pub mod proxy;
pub mod routes;
mod status;
pub mod upstream;

use arc_swap::ArcSwap;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use wharf_cluster::{Cluster, MemberInfo, MemberState, Role};
use wharf_config::lbconf::{Services, Warning};
use wharf_config::{Env, LbConfig, LbSettings};
use wharf_net::{ServeOptions, ShutdownSignal};

pub use routes::{NoTenants, TenantDirectory};

/// The tenants the managers of the cluster publish (`tenant:<domain>`),
/// rebuilt whenever the cluster view changes, so a tenant added on a
/// manager is routed without a restart.
#[derive(Default)]
pub struct ClusterTenants {
    ids: ArcSwap<std::collections::HashMap<String, u32>>,
}

impl ClusterTenants {
    fn update(&self, members: &[wharf_cluster::Member]) {
        let ids: std::collections::HashMap<String, u32> = members
            .iter()
            .filter(|m| m.info.role == Role::Manager)
            .flat_map(|m| m.info.tenants.iter().map(|(d, t)| (d.clone(), t.id)))
            .collect();
        if **self.ids.load() != ids {
            tracing::info!(tenants = ids.len(), "tenants learned from the cluster");
            self.ids.store(Arc::new(ids));
        }
    }
}

impl TenantDirectory for ClusterTenants {
    fn tenant_id(&self, tenant_domain: &str) -> Option<u32> {
        self.ids.load().get(tenant_domain).copied()
    }
}

/// Errors that stop the load balancer from starting.
#[derive(Debug, thiserror::Error)]
pub enum LbError {
    #[error("cannot listen on {addr} (lb.{listener}): {source}")]
    Bind {
        listener: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Tls(#[from] wharf_net::tls::TlsError),
    #[error(transparent)]
    Cluster(#[from] wharf_cluster::JoinError),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
}

/// A configuration read and validated: settings and services.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: LbConfig,
    pub services: Services,
    /// Where the services came from, for logs.
    pub services_source: String,
    pub warnings: Vec<String>,
}

/// Reads `lb.toml` (or the defaults) and the loadbalancer.conf it or
/// `services` names. Without any loadbalancer.conf every host goes to the
/// `worker` sub-domain of the load balancer's own cluster domain.
pub fn load(config: Option<&Path>, services: Option<&Path>, env: &Env) -> Result<Loaded, String> {
    let config = match config {
        Some(p) => LbConfig::load_with_env(p, env),
        None => LbConfig::defaults(env),
    }
    .map_err(|e| e.to_string())?;
    let file: Option<PathBuf> = services
        .map(Path::to_path_buf)
        .or_else(|| config.lb.services_file.clone());
    let (services, warnings, source) = match &file {
        Some(p) => {
            let name = p.display().to_string();
            let text =
                std::fs::read_to_string(p).map_err(|e| format!("{name}: cannot read: {e}"))?;
            let (s, w) = Services::parse(&text, &name).map_err(|e| e.to_string())?;
            let w = w
                .into_iter()
                .map(|Warning { pos, message }| {
                    format!("{name}:{}:{}: {message}", pos.line, pos.col)
                })
                .collect();
            (s, w, name)
        }
        None => {
            let text = format!(
                "services {{ default {{ hosts *; domains {{ {} {{ sub_domain worker; }} }} }} }}",
                config.clustering.domain
            );
            let (s, _) = Services::parse(&text, "<default services>").map_err(|e| e.to_string())?;
            (
                s,
                vec![],
                "<default: every host to the worker sub-domain>".to_string(),
            )
        }
    };
    Ok(Loaded {
        config,
        services,
        services_source: source,
        warnings,
    })
}

/// The listeners, bound before the load balancer is built.
pub struct Listeners {
    pub http: TcpListener,
    pub https: TcpListener,
    pub status: TcpListener,
}

impl Listeners {
    pub async fn bind(s: &LbSettings) -> Result<Listeners, LbError> {
        async fn one(listener: &'static str, addr: SocketAddr) -> Result<TcpListener, LbError> {
            TcpListener::bind(addr)
                .await
                .map_err(|source| LbError::Bind {
                    listener,
                    addr,
                    source,
                })
        }
        Ok(Listeners {
            http: one("http", s.http_addr()).await?,
            https: one("https", s.https_addr()).await?,
            status: one("status", s.status_addr()).await?,
        })
    }
}

/// What a reload replaces: routes and settings.
pub struct Active {
    pub routes: routes::RouteTable,
    pub settings: LbSettings,
    pub fail_over: bool,
    pub pool: upstream::PoolSettings,
    /// Kept to tell a reload that membership settings need a restart.
    clustering: wharf_config::ClusteringConfig,
}

impl Active {
    fn new(loaded: &Loaded) -> Active {
        let s = &loaded.config.lb;
        Active {
            routes: routes::RouteTable::new(&loaded.services, s.algorithm),
            settings: s.clone(),
            fail_over: loaded.services.fail_over,
            clustering: loaded.config.clustering.clone(),
            pool: upstream::PoolSettings {
                connect_timeout: s.connect_timeout,
                max_idle_per_member: s.pool_max_idle_per_member,
                idle_timeout: POOL_IDLE_TIMEOUT,
            },
        }
    }
}

/// Pooled member connections idle longer than this are not reused.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Shared by every request.
pub struct State {
    pub active: ArcSwap<Active>,
    pub pools: ArcSwap<pool::Pools>,
    pub metrics: metrics::Metrics,
    pub access: ArcSwap<access::AccessLog>,
    pub tenants: ClusterTenants,
    /// Metrics of requests no service matched.
    pub unrouted: Arc<metrics::ServiceMetrics>,
    pub cluster: Option<Arc<Cluster>>,
    registry: prometheus_client::registry::Registry,
    draining: std::sync::atomic::AtomicBool,
    /// Backends by id, kept across pool rebuilds.
    known: std::sync::Mutex<BTreeMap<String, Arc<pool::Backend>>>,
    epoch: Instant,
}

impl State {
    fn rebuild_pools(&self) {
        let members = self
            .cluster
            .as_ref()
            .map(|c| c.members())
            .unwrap_or_default();
        let wanted = self.active.load().routes.pools();
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        let pools = pool::build(&wanted, &members, &mut known, self.epoch);
        drop(known);
        self.tenants.update(&members);
        self.pools.store(Arc::new(pools));
        self.update_gauges();
    }

    fn update_gauges(&self) {
        let now = Instant::now();
        for (key, p) in self.pools.load().iter() {
            self.metrics
                .live_members
                .get_or_create(&metrics::pool_labels(key))
                .set(p.live(now) as i64);
        }
    }

    /// Applies a new configuration; what needs a restart is named in the log.
    pub fn reload(&self, loaded: &Loaded) {
        let old = self.active.load_full();
        let (a, b) = (&old.settings, &loaded.config.lb);
        let restart: Vec<&str> = [
            ("lb.http", a.http != b.http),
            ("lb.https", a.https != b.https),
            ("lb.status", a.status != b.status),
            ("lb.socket_timeout_ms", a.socket_timeout != b.socket_timeout),
            ("lb.shutdown_grace_ms", a.shutdown_grace != b.shutdown_grace),
            ("lb.data_dir", a.data_dir != b.data_dir),
            ("lb.health_check", a.health_check != b.health_check),
            ("lb.workers", a.workers != b.workers),
            ("clustering", old.clustering != loaded.config.clustering),
        ]
        .into_iter()
        .filter_map(|(k, changed)| changed.then_some(k))
        .collect();
        if !restart.is_empty() {
            tracing::warn!(settings = %restart.join(", "), "these settings changed but apply only after a restart");
        }
        if a.access_log != b.access_log {
            match access::AccessLog::new(b.access_log.format, b.access_log.path.as_deref()) {
                Ok(log) => self.access.store(Arc::new(log)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot open the new access log; keeping the old one")
                }
            }
        }
        self.active.store(Arc::new(Active::new(loaded)));
        // At once, so no request meets new routes without their pools.
        self.rebuild_pools();
        tracing::info!(services = loaded.services.services.len(), source = %loaded.services_source, "configuration reloaded");
    }
}

/// Runs the load balancer until `shutdown` fires, then drains: new
/// connections are refused, in-flight requests finish within the grace
/// period, and it leaves the cluster. Each value from `reloads` is a
/// re-read configuration: applied if it was read, refused (and the running
/// one kept) if not.
pub async fn run(
    loaded: Loaded,
    listeners: Listeners,
    shutdown: ShutdownSignal,
    mut reloads: tokio::sync::mpsc::Receiver<Result<Loaded, String>>,
) -> Result<(), LbError> {
    let s = loaded.config.lb.clone();
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    std::fs::create_dir_all(&s.data_dir).map_err(|source| LbError::DataDir {
        path: s.data_dir.display().to_string(),
        source,
    })?;
    let tls = tls_config(&s, &loaded.services)?;

    let addr = |l: &TcpListener| l.local_addr().expect("a bound listener has an address");
    let (http_addr, https_addr, status_addr) = (
        addr(&listeners.http),
        addr(&listeners.https),
        addr(&listeners.status),
    );
    let cluster = if loaded.config.clustering.enabled {
        let mut info = MemberInfo::new(
            Role::Lb,
            &loaded.config.clustering.domain,
            None,
            MemberState::Ready,
        );
        info.http_url = Some(format!(
            "http://{}:{}",
            loaded.config.clustering.local_member_host,
            http_addr.port()
        ));
        info.https_url = Some(format!(
            "https://{}:{}",
            loaded.config.clustering.local_member_host,
            https_addr.port()
        ));
        info.properties = loaded.config.clustering.properties.clone();
        Some(Arc::new(
            wharf_cluster::join_configured(&loaded.config.clustering, &info).await?,
        ))
    } else {
        tracing::info!("clustering is disabled: only static members are used");
        None
    };

    let mut registry = prometheus_client::registry::Registry::with_prefix("wharf_lb");
    let metrics = metrics::Metrics::register(&mut registry);
    let access = access::AccessLog::new(s.access_log.format, s.access_log.path.as_deref())
        .map_err(|e| LbError::Config(format!("lb.access_log.path: cannot open: {e}")))?;
    let unrouted = Arc::new(metrics::ServiceMetrics::new(&metrics, "-"));
    let state = Arc::new(State {
        unrouted,
        active: ArcSwap::from_pointee(Active::new(&loaded)),
        pools: ArcSwap::from_pointee(pool::Pools::default()),
        metrics,
        access: ArcSwap::from_pointee(access),
        tenants: ClusterTenants::default(),
        cluster: cluster.clone(),
        registry,
        draining: false.into(),
        known: Default::default(),
        epoch: Instant::now(),
    });
    state.rebuild_pools();
    tracing::info!(
        http = %http_addr,
        https = %https_addr,
        status = %status_addr,
        services = loaded.services.services.len(),
        source = %loaded.services_source,
        "load balancer listening"
    );

    // Pools follow the cluster view (reloads rebuild them themselves);
    // gauges follow ejections.
    let follower = {
        let state = state.clone();
        let mut view = cluster.as_ref().map(|c| c.watch());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                let changed = async {
                    match view.as_mut() {
                        Some(v) => v.changed().await.is_ok(),
                        None => futures::future::pending().await,
                    }
                };
                tokio::select! {
                    ok = changed => {
                        if !ok { return; }
                        state.rebuild_pools();
                    }
                    _ = tick.tick() => state.update_gauges(),
                }
            }
        })
    };
    let reloader = {
        let state = state.clone();
        tokio::spawn(async move {
            while let Some(next) = reloads.recv().await {
                let result = match next {
                    Ok(loaded) => {
                        for w in &loaded.warnings {
                            tracing::warn!("{w}");
                        }
                        state.reload(&loaded);
                        "ok"
                    }
                    Err(e) => {
                        tracing::error!(
                            error = %e,
                            "reload refused: the new configuration is invalid; the previous one keeps serving"
                        );
                        "refused"
                    }
                };
                state
                    .metrics
                    .reloads
                    .get_or_create(&metrics::ReloadLabel {
                        result: result.into(),
                    })
                    .inc();
            }
        })
    };
    let checker = s.health_check.enabled.then(|| {
        tokio::spawn(health::run(
            state.clone(),
            s.health_check.clone(),
            shutdown.clone(),
        ))
    });

    let workers = match s.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let proxies = proxy_workers(
        workers,
        state.clone(),
        &s,
        [
            (listeners.http, None, "http"),
            (listeners.https, Some(tls), "https"),
        ],
        shutdown.clone(),
    )
    .map_err(|e| LbError::Config(format!("cannot start the proxy worker threads: {e}")))?;
    let (stop_status, status_signal) = wharf_net::Shutdown::new();
    let status = {
        let state = state.clone();
        tokio::spawn(wharf_net::serve(
            listeners.status,
            ServeOptions::new("status", None, s.shutdown_grace),
            move |req, _| status::handle(state.clone(), req),
            status_signal,
        ))
    };

    let mut stop = shutdown.clone();
    stop.wait().await;
    state
        .draining
        .store(true, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(
        grace_ms = s.shutdown_grace.as_millis() as u64,
        "draining: no new connections, finishing requests in flight"
    );
    if let Some(c) = &cluster {
        c.set_state(MemberState::Draining).await;
    }
    let mut cut_off = 0;
    for w in proxies {
        cut_off += w.await.unwrap_or(0);
    }
    if let Some(c) = &cluster {
        c.leave().await;
    }
    stop_status.trigger();
    let _ = status.await;
    follower.abort();
    reloader.abort();
    if let Some(c) = checker {
        c.abort();
    }
    tracing::info!(cut_off, "load balancer stopped");
    Ok(())
}

/// Starts `workers` threads, each with its own single-threaded event loop
/// serving both proxy listeners, and one acceptor thread that deals the
/// connections out to them in turn: an even share for every loop (the
/// kernel's `SO_REUSEPORT` hash left one loop with more connections than
/// another, and its requests waited longer). Each worker resolves to the
/// number of connections it had to cut off when the grace period ran out.
fn proxy_workers(
    workers: usize,
    state: Arc<State>,
    s: &LbSettings,
    listeners: [(TcpListener, Option<TlsAcceptor>, &'static str); 2],
    shutdown: ShutdownSignal,
) -> std::io::Result<Vec<tokio::sync::oneshot::Receiver<usize>>> {
    type Handed = (std::net::TcpStream, SocketAddr);
    let mut accepting = vec![];
    // Per worker: a channel per listener.
    let mut inboxes: Vec<Vec<tokio::sync::mpsc::Receiver<Handed>>> =
        (0..workers).map(|_| vec![]).collect();
    let mut served = vec![];
    for (l, tls, name) in listeners {
        let addr = l.local_addr()?;
        let mut senders = vec![];
        for inbox in inboxes.iter_mut() {
            let (tx, rx) = tokio::sync::mpsc::channel::<Handed>(1024);
            senders.push(tx);
            inbox.push(rx);
        }
        accepting.push((l.into_std()?, senders, name));
        served.push((addr, tls, name));
    }

    // The acceptor.
    {
        let shutdown = shutdown.clone();
        // Built here so that a failure is the caller's error, not a
        // load balancer whose workers never get a connection.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let accepting = {
            let _in = rt.enter();
            accepting
                .into_iter()
                .map(|(l, senders, name)| Ok((TcpListener::from_std(l)?, senders, name)))
                .collect::<std::io::Result<Vec<_>>>()?
        };
        std::thread::Builder::new()
            .name("wharf-lb-accept".into())
            .spawn(move || {
                rt.block_on(async move {
                    let loops = accepting.into_iter().map(|(l, senders, name)| {
                        let mut shutdown = shutdown.clone();
                        async move {
                            let mut next = 0;
                            loop {
                                let accepted = tokio::select! {
                                    a = l.accept() => a,
                                    _ = shutdown.wait() => return,
                                };
                                let (stream, peer) = match accepted {
                                    Ok(v) => v,
                                    Err(e) => {
                                        tracing::warn!(listener = name, error = %e, "accept failed");
                                        tokio::time::sleep(Duration::from_millis(50)).await;
                                        continue;
                                    }
                                };
                                let Ok(stream) = stream.into_std() else { continue };
                                let to = &senders[next % senders.len()];
                                next = next.wrapping_add(1);
                                if to.send((stream, peer)).await.is_err() {
                                    return;
                                }
                            }
                        }
                    });
                    futures::future::join_all(loops).await;
                });
            })?;
    }

    let mut done = vec![];
    for (i, inbox) in inboxes.into_iter().enumerate() {
        let mine: Vec<_> = inbox.into_iter().zip(served.iter().cloned()).collect();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (state, shutdown) = (state.clone(), shutdown.clone());
        let (grace, idle, fast_path) = (s.shutdown_grace, s.socket_timeout, s.fast_path);
        std::thread::Builder::new()
            .name(format!("wharf-lb-{i}"))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start a proxy worker's event loop");
                        return;
                    }
                };
                let open = rt.block_on(async move {
                    let servers = mine.into_iter().map(|(rx, (addr, tls, name))| {
                        let fast = fast_path && tls.is_none();
                        let mut opts = ServeOptions::new(name, tls, grace);
                        opts.idle_timeout = idle;
                        opts.strict_framing = true;
                        let info = proxy::Listener {
                            proto: name,
                            port: addr.port(),
                        };
                        let handler = {
                            let state = state.clone();
                            move |req, peer| proxy::handle(state.clone(), req, peer, info)
                        };
                        let takeover = {
                            let (state, shutdown) = (state.clone(), shutdown.clone());
                            move |stream, peer| {
                                fast::serve(stream, peer, state.clone(), info, shutdown.clone())
                            }
                        };
                        let shutdown = shutdown.clone();
                        let conns = wharf_net::Connections::Handed(rx);
                        async move {
                            if fast {
                                wharf_net::serve_with_takeover(
                                    conns, opts, handler, takeover, shutdown,
                                )
                                .await
                            } else {
                                wharf_net::serve(conns, opts, handler, shutdown).await
                            }
                        }
                    });
                    futures::future::join_all(servers)
                        .await
                        .into_iter()
                        .sum::<usize>()
                });
                let _ = tx.send(open);
            })?;
        done.push(rx);
    }
    Ok(done)
}

/// The HTTPS configuration: the configured certificate or a generated one
/// for every configured host name, plus per-host certificates by SNI.
fn tls_config(s: &LbSettings, services: &Services) -> Result<TlsAcceptor, LbError> {
    let default = match (&s.https.cert, &s.https.key) {
        (Some(cert), Some(key)) => wharf_net::tls::load_pem(cert, key)?,
        _ => {
            let hosts: Vec<&str> = services
                .services
                .iter()
                .flat_map(|svc| svc.entries.iter())
                .flat_map(|e| e.hosts.iter())
                .map(String::as_str)
                .filter(|h| *h != "*")
                .collect();
            let names = wharf_net::tls::default_names(&hosts);
            wharf_net::tls::load_or_generate(&s.data_dir.join("tls"), &names)?
        }
    };
    let mut per_host = vec![];
    for c in &s.https.certificates {
        per_host.push((c.hosts.clone(), wharf_net::tls::load_pem(&c.cert, &c.key)?));
    }
    Ok(TlsAcceptor::from(wharf_net::tls::sni_server_config(
        default, per_host,
    )?))
}
