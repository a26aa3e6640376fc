//! `wharf server` settings: the seed's carbon.xml, catalina-server.xml and
//! the runtime limits of the application host.

use crate::error::ConfigErrors;
use crate::offset_port;
use crate::reader::Reader;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The seed's Tomcat HTTP connector port.
pub const DEFAULT_HTTP_PORT: u16 = 9763;
/// The seed's Tomcat HTTPS connector port.
pub const DEFAULT_HTTPS_PORT: u16 = 9443;
/// The status listener (health and metrics); not in the seed.
pub const DEFAULT_STATUS_PORT: u16 = 9900;

/// A whole, validated `wharf.toml` for `wharf server`.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    pub server: ServerConfig,
    pub runtime: RuntimeConfig,
    pub clustering: crate::ClusteringConfig,
    pub deployment_synchronizer: crate::SyncConfig,
    pub admin: crate::AdminConfig,
    pub tenants: crate::TenantsConfig,
}

/// Carbon's default `localMemberPort` for application server nodes.
pub const DEFAULT_MEMBER_PORT: u16 = 4100;

/// The variables a configuration may take from the environment.
pub type Env = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub port_offset: u16,
    pub host_name: String,
    pub mgt_host_name: String,
    pub worker_node: bool,
    pub http: HttpListener,
    pub https: HttpsListener,
    pub status: StatusListener,
    /// How long in-flight requests may run on after SIGTERM.
    pub shutdown_grace: Duration,
    /// How often the hot-deployment directory is scanned.
    pub hot_deploy_interval: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpListener {
    pub bind: IpAddr,
    /// The effective port: configured port + `port_offset` (0 stays 0).
    pub port: u16,
    /// The port clients see in front of a proxy (catalina's `proxyPort`).
    pub proxy_port: Option<u16>,
    /// Answer every plain-HTTP request with a redirect to HTTPS.
    pub redirect_to_https: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpsListener {
    pub bind: IpAddr,
    pub port: u16,
    pub proxy_port: Option<u16>,
    /// PEM certificate chain and key; both or neither. Neither: a
    /// self-signed certificate is generated into the data directory.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StatusListener {
    pub bind: IpAddr,
    pub port: u16,
}

/// Limits and options of the WebAssembly host.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    /// Linear memory one instance may grow to, in bytes.
    pub memory_limit: u64,
    /// Wall time one request may take, including streaming its body.
    pub request_timeout: Duration,
    /// Instances that may run at once for one application.
    pub max_instances_per_app: u32,
    /// Instances that may run at once on this node (sizes the pool).
    pub max_instances: u32,
    /// Largest request body an application is given, in bytes.
    pub max_request_body: u64,
    /// How long a request waits for a free instance before a 503.
    pub queue_timeout: Duration,
    /// Use wasmtime's pooling instance allocator.
    pub pooling_allocator: bool,
    /// Allow applications to make outgoing HTTP requests (`wasi:http/outgoing-handler`).
    pub outgoing_http: bool,
    /// Where compiled code is cached (default `<data_dir>/cache`).
    pub cache_dir: PathBuf,
    /// Environment variables every application sees (`wasi:cli/environment`).
    pub env: BTreeMap<String, String>,
}

/// What the command line sets over the file.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides {
    /// `--worker-node`: the seed's `-DworkerNode=true`.
    pub worker_node: bool,
}

impl NodeConfig {
    /// The configuration used when no file is given.
    pub fn defaults() -> NodeConfig {
        Self::defaults_with(&Env::new(), Overrides::default()).expect("the defaults are valid")
    }

    /// The defaults, with what `env` and the command line set.
    pub fn defaults_with(env: &Env, overrides: Overrides) -> Result<NodeConfig, ConfigErrors> {
        Self::from_reader(
            Reader::from_table(Default::default(), "<defaults>"),
            Path::new("."),
            env,
            overrides,
        )
    }

    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigErrors> {
        Self::load_with_env(path, &Env::new())
    }

    /// Reads and validates a configuration file; `env` may supply
    /// `WHARF_CLUSTER_SECRET` and the other variables named in the reference.
    pub fn load_with_env(path: &Path, env: &Env) -> Result<NodeConfig, ConfigErrors> {
        Self::load_with(path, env, Overrides::default())
    }

    /// Like [`NodeConfig::load_with_env`], with command-line overrides.
    pub fn load_with(
        path: &Path,
        env: &Env,
        overrides: Overrides,
    ) -> Result<NodeConfig, ConfigErrors> {
        let (text, name, base) = crate::reader::read_file(path)?;
        Self::from_reader(Reader::parse(&text, &name)?, &base, env, overrides)
    }

    /// Parses `text`; relative paths in it are taken relative to `base`.
    pub fn from_toml(text: &str, file: &str, base: &Path) -> Result<NodeConfig, ConfigErrors> {
        Self::from_toml_with_env(text, file, base, &Env::new())
    }

    pub fn from_toml_with_env(
        text: &str,
        file: &str,
        base: &Path,
        env: &Env,
    ) -> Result<NodeConfig, ConfigErrors> {
        Self::from_reader(Reader::parse(text, file)?, base, env, Overrides::default())
    }

    fn from_reader(
        mut r: Reader,
        base: &Path,
        env: &Env,
        overrides: Overrides,
    ) -> Result<NodeConfig, ConfigErrors> {
        let mut server = read_server(r.table("server"), base);
        server.worker_node |= overrides.worker_node;
        let runtime = read_runtime(r.table("runtime"), base, &server.data_dir);
        let clustering = crate::ClusteringConfig::read(
            r.table("clustering"),
            base,
            server.port_offset,
            DEFAULT_MEMBER_PORT,
            false,
            env,
        );
        let deployment_synchronizer = crate::SyncConfig::read(
            r.table("deployment_synchronizer"),
            base,
            server.worker_node,
            env,
        );
        let admin = crate::AdminConfig::read(r.table("admin"), env);
        let tenants = crate::TenantsConfig::read(r.table("tenants"));
        r.into_result()?;
        Ok(NodeConfig {
            server,
            runtime,
            clustering,
            deployment_synchronizer,
            admin,
            tenants,
        })
    }
}

impl ServerConfig {
    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::new(self.http.bind, self.http.port)
    }
    pub fn https_addr(&self) -> SocketAddr {
        SocketAddr::new(self.https.bind, self.https.port)
    }
    pub fn status_addr(&self) -> SocketAddr {
        SocketAddr::new(self.status.bind, self.status.port)
    }
    /// Where the hot-deployment directory is, as in Carbon's layout.
    pub fn webapps_dir(&self) -> PathBuf {
        self.data_dir
            .join("deployment")
            .join("server")
            .join("webapps")
    }
}

const ANY: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn read_server(mut r: Reader, base: &Path) -> ServerConfig {
    let data_dir = r
        .opt_path("data_dir", base)
        .unwrap_or_else(|| PathBuf::from("./wharf-data"));
    let port_offset = r.u16_or("port_offset", 0);
    let host_name = r.string_or("host_name", "localhost");
    check_host(&r, "host_name", &host_name);
    let mgt_host_name = match r.opt_string("mgt_host_name") {
        Some(name) => {
            check_host(&r, "mgt_host_name", &name);
            name
        }
        None => host_name.clone(),
    };
    let worker_node = r.bool_or("worker_node", false);
    let shutdown_grace = Duration::from_millis(r.u64_or("shutdown_grace_ms", 30_000, 0, 3_600_000));
    let hot_deploy_interval =
        Duration::from_millis(r.u64_or("hot_deploy_interval_ms", 500, 50, 600_000));

    let port = |t: &mut Reader, default: u16| read_port(t, default, port_offset);

    let mut t = r.table("http");
    let http = HttpListener {
        bind: t.ip_or("bind", ANY),
        port: port(&mut t, DEFAULT_HTTP_PORT),
        proxy_port: t.opt_u16("proxy_port"),
        redirect_to_https: t.bool_or("redirect_to_https", false),
    };
    t.finish();

    let mut t = r.table("https");
    let https = HttpsListener {
        bind: t.ip_or("bind", ANY),
        port: port(&mut t, DEFAULT_HTTPS_PORT),
        proxy_port: t.opt_u16("proxy_port"),
        cert: t.opt_path("cert", base),
        key: t.opt_path("key", base),
    };
    if https.cert.is_some() != https.key.is_some() {
        let missing = if https.cert.is_some() { "key" } else { "cert" };
        t.error(
            missing,
            "cert and key must be set together (or neither, for a generated certificate)",
        );
    }
    t.finish();

    let mut t = r.table("status");
    let status = StatusListener {
        bind: t.ip_or("bind", LOCAL),
        port: port(&mut t, DEFAULT_STATUS_PORT),
    };
    t.finish();

    let ports = [
        ("http.port", http.port),
        ("https.port", https.port),
        ("status.port", status.port),
    ];
    check_distinct_ports(&r, "server", &ports);

    r.finish();
    ServerConfig {
        data_dir,
        port_offset,
        host_name,
        mgt_host_name,
        worker_node,
        http,
        https,
        status,
        shutdown_grace,
        hot_deploy_interval,
    }
}

/// `port` of a listener table, plus the port offset.
pub(crate) fn read_port(t: &mut Reader, default: u16, port_offset: u16) -> u16 {
    let configured = t.u16_or("port", default);
    offset_port(configured, port_offset).unwrap_or_else(|| {
        t.error(
            "port",
            format!("{configured} + port_offset {port_offset} is above 65535"),
        );
        configured
    })
}

/// Listeners of one process must not share a port.
pub(crate) fn check_distinct_ports(r: &Reader, prefix: &str, ports: &[(&str, u16)]) {
    for (i, (a, pa)) in ports.iter().enumerate() {
        for (b, pb) in &ports[i + 1..] {
            if *pa != 0 && pa == pb {
                r.error(b, format!("port {pb} is already used by {prefix}.{a}"));
            }
        }
    }
}

fn check_host(r: &Reader, key: &str, host: &str) {
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == ':');
    if !ok {
        r.error(
            key,
            format!("{host:?} is not a host name (letters, digits, '-', '.')"),
        );
    }
}

const MIB: u64 = 1024 * 1024;

fn read_runtime(mut r: Reader, base: &Path, data_dir: &Path) -> RuntimeConfig {
    let cfg = RuntimeConfig {
        memory_limit: r.u64_or("memory_limit_mb", 128, 1, 4096) * MIB,
        request_timeout: Duration::from_millis(r.u64_or(
            "request_timeout_ms",
            30_000,
            1,
            86_400_000,
        )),
        max_instances_per_app: r.u32_or("max_instances_per_app", 500, 1, 100_000),
        max_instances: r.u32_or("max_instances", 1000, 1, 100_000),
        max_request_body: r.u64_or("max_request_body_bytes", 64 * MIB, 0, u64::MAX),
        queue_timeout: Duration::from_millis(r.u64_or("queue_timeout_ms", 1000, 0, 600_000)),
        pooling_allocator: r.bool_or("pooling_allocator", true),
        outgoing_http: r.bool_or("outgoing_http", true),
        cache_dir: r
            .opt_path("cache_dir", base)
            .unwrap_or_else(|| data_dir.join("cache")),
        env: r.string_map("env"),
    };
    for k in cfg.env.keys() {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            r.error(
                "env",
                format!("{k:?} is not a valid environment variable name"),
            );
        }
    }
    r.finish();
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_seed() {
        let c = NodeConfig::defaults();
        assert_eq!(c.server.http.port, 9763);
        assert_eq!(c.server.https.port, 9443);
        assert_eq!(c.server.status.bind, LOCAL);
        assert_eq!(c.server.data_dir, PathBuf::from("./wharf-data"));
        assert_eq!(c.server.mgt_host_name, "localhost");
        assert!(!c.server.worker_node);
        assert_eq!(c.runtime.cache_dir, PathBuf::from("./wharf-data/cache"));
    }

    #[test]
    fn offset_moves_every_port() {
        let text = "[server]\nport_offset = 2\nhost_name = \"as.example.com\"\n[server.http]\nproxy_port = 8280\n";
        let c = NodeConfig::from_toml(text, "w.toml", Path::new("/etc/wharf")).unwrap();
        assert_eq!(c.server.http.port, 9765);
        assert_eq!(c.server.https.port, 9445);
        assert_eq!(c.server.status.port, 9902);
        assert_eq!(c.server.http.proxy_port, Some(8280));
        assert_eq!(c.server.mgt_host_name, "as.example.com");
    }

    #[test]
    fn relative_paths_follow_the_file() {
        let text =
            "[server]\ndata_dir = \"data\"\n[server.https]\ncert = \"c.pem\"\nkey = \"k.pem\"\n";
        let c = NodeConfig::from_toml(text, "w.toml", Path::new("/etc/wharf")).unwrap();
        assert_eq!(c.server.data_dir, PathBuf::from("/etc/wharf/data"));
        assert_eq!(c.server.https.cert, Some(PathBuf::from("/etc/wharf/c.pem")));
        assert_eq!(c.runtime.cache_dir, PathBuf::from("/etc/wharf/data/cache"));
    }

    #[test]
    fn every_error_is_reported() {
        let text = r#"
[server]
port_offset = 70000
host_name = "bad host"
colour = "blue"
[server.http]
port = 9443
[server.https]
cert = "only-cert.pem"
[runtime]
memory_limit_mb = 0
[nonsense]
enabled = true
"#;
        let errs = NodeConfig::from_toml(text, "w.toml", Path::new(".")).unwrap_err();
        let lines: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        let expect = [
            "w.toml:server.port_offset: 70000 is out of range: expected 0 to 65535",
            "w.toml:server.host_name: \"bad host\" is not a host name",
            "w.toml:server.https.key: cert and key must be set together",
            "w.toml:server.https.port: port 9443 is already used by server.http.port",
            "w.toml:server.colour: unknown key",
            "w.toml:runtime.memory_limit_mb: 0 is out of range: expected 1 to 4096",
            "w.toml:nonsense: unknown key",
        ];
        for e in expect {
            assert!(
                lines.iter().any(|l| l.starts_with(e)),
                "missing {e:?} in {lines:#?}"
            );
        }
        assert_eq!(lines.len(), expect.len(), "{lines:#?}");
    }
}
