//! `wharf lb` settings (`lb.toml`): listeners, timeouts, balancing and the
//! load balancer's own cluster membership. Which hosts go to which cluster
//! domain is in the seed's loadbalancer.conf ([`crate::lbconf`]), named by
//! `services_file` or `--services`.

use crate::error::ConfigErrors;
use crate::lbconf::Algorithm;
use crate::node::{check_distinct_ports, read_port, Env};
use crate::reader::Reader;
use crate::{ClusteringConfig, StatusListener};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The seed ELB's HTTP port.
pub const DEFAULT_LB_HTTP_PORT: u16 = 8280;
/// The seed ELB's HTTPS port.
pub const DEFAULT_LB_HTTPS_PORT: u16 = 8243;
/// The load balancer's status listener (health and metrics); not in the seed.
pub const DEFAULT_LB_STATUS_PORT: u16 = 9901;
/// The seed ELB's `localMemberPort`.
pub const DEFAULT_LB_MEMBER_PORT: u16 = 4000;

/// A whole, validated `lb.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct LbConfig {
    pub lb: LbSettings,
    pub clustering: ClusteringConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LbSettings {
    /// Where the generated certificate is kept.
    pub data_dir: PathBuf,
    pub port_offset: u16,
    /// The loadbalancer.conf; `--services` overrides it.
    pub services_file: Option<PathBuf>,
    pub http: LbListener,
    pub https: LbHttps,
    pub status: StatusListener,
    /// The default for services that name none.
    pub algorithm: Algorithm,
    /// Idle time after which a client connection is closed (the seed's
    /// `http.socket.timeout`); `None` = never.
    pub socket_timeout: Option<Duration>,
    pub connect_timeout: Duration,
    /// Time from sending a request to a member until its response headers; `None` = never.
    pub response_timeout: Option<Duration>,
    /// How long in-flight requests may run on after SIGTERM.
    pub shutdown_grace: Duration,
    /// Further members a failed request may be tried on.
    pub max_retries: u32,
    /// First ejection of a failing member; doubles on each further failure.
    pub eject_base: Duration,
    pub eject_max: Duration,
    pub health_check: HealthCheck,
    pub access_log: AccessLog,
    /// Idle keep-alive connections kept per member (per worker thread).
    pub pool_max_idle_per_member: usize,
    /// Threads serving the proxy listeners, each with its own event loop
    /// and connection pool; 0 = one per CPU.
    pub workers: usize,
    /// Serve plain-HTTP/1.1 requests on the proxy's own fast path (the
    /// rest, and everything when off, on hyper).
    pub fast_path: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LbListener {
    pub bind: IpAddr,
    pub port: u16,
}

/// A certificate for some host names (SNI).
#[derive(Debug, Clone, PartialEq)]
pub struct HostCert {
    pub hosts: Vec<String>,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LbHttps {
    pub bind: IpAddr,
    pub port: u16,
    /// The default certificate; both or neither (neither: generated).
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Per-host certificates, chosen by the client's SNI.
    pub certificates: Vec<HostCert>,
}

/// The active check of each member's `/health/ready`.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub enabled: bool,
    pub interval: Duration,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogFormat {
    Off,
    /// Apache's combined log format.
    Combined,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AccessLog {
    pub format: AccessLogFormat,
    /// A file to append to; `None` writes to standard output.
    pub path: Option<PathBuf>,
}

const ANY: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

impl LbConfig {
    /// The configuration used when no file is given (clustering then
    /// needs `WHARF_CLUSTER_SECRET` in `env`).
    pub fn defaults(env: &Env) -> Result<LbConfig, ConfigErrors> {
        Self::from_reader(
            Reader::from_table(Default::default(), "<defaults>"),
            Path::new("."),
            env,
        )
    }

    pub fn load_with_env(path: &Path, env: &Env) -> Result<LbConfig, ConfigErrors> {
        let (text, name, base) = crate::reader::read_file(path)?;
        Self::from_toml_with_env(&text, &name, &base, env)
    }

    pub fn from_toml_with_env(
        text: &str,
        file: &str,
        base: &Path,
        env: &Env,
    ) -> Result<LbConfig, ConfigErrors> {
        Self::from_reader(Reader::parse(text, file)?, base, env)
    }

    fn from_reader(mut r: Reader, base: &Path, env: &Env) -> Result<LbConfig, ConfigErrors> {
        let lb = read_lb(r.table("lb"), base);
        let clustering = ClusteringConfig::read(
            r.table("clustering"),
            base,
            lb.port_offset,
            DEFAULT_LB_MEMBER_PORT,
            true,
            env,
        );
        r.into_result()?;
        Ok(LbConfig { lb, clustering })
    }
}

impl LbSettings {
    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::new(self.http.bind, self.http.port)
    }
    pub fn https_addr(&self) -> SocketAddr {
        SocketAddr::new(self.https.bind, self.https.port)
    }
    pub fn status_addr(&self) -> SocketAddr {
        SocketAddr::new(self.status.bind, self.status.port)
    }
}

fn millis_or_never(r: &mut Reader, key: &str, default: u64) -> Option<Duration> {
    match r.u64_or(key, default, 0, 86_400_000) {
        0 => None,
        ms => Some(Duration::from_millis(ms)),
    }
}

fn read_lb(mut r: Reader, base: &Path) -> LbSettings {
    let data_dir = r
        .opt_path("data_dir", base)
        .unwrap_or_else(|| PathBuf::from("./wharf-lb-data"));
    let port_offset = r.u16_or("port_offset", 0);
    let services_file = r.opt_path("services_file", base);
    let algorithm = r.parsed_or(
        "algorithm",
        Algorithm::RoundRobin,
        "round_robin or least_connections",
    );
    let socket_timeout = millis_or_never(&mut r, "socket_timeout_ms", 60_000);
    let connect_timeout = Duration::from_millis(r.u64_or("connect_timeout_ms", 3_000, 1, 600_000));
    let response_timeout = millis_or_never(&mut r, "response_timeout_ms", 60_000);
    let shutdown_grace = Duration::from_millis(r.u64_or("shutdown_grace_ms", 30_000, 0, 3_600_000));
    let max_retries = r.u32_or("max_retries", 2, 0, 16);
    let eject_base = Duration::from_millis(r.u64_or("eject_ms", 2_000, 10, 3_600_000));
    let eject_max = Duration::from_millis(r.u64_or("eject_max_ms", 60_000, 10, 86_400_000));
    if eject_max < eject_base {
        r.error("eject_max_ms", "must not be below eject_ms");
    }
    let pool_max_idle_per_member = r.u32_or("pool_max_idle_per_member", 256, 0, 100_000) as usize;
    let workers = r.u32_or("workers", 0, 0, 1024) as usize;
    let fast_path = r.bool_or("fast_path", true);

    let mut t = r.table("http");
    let http = LbListener {
        bind: t.ip_or("bind", ANY),
        port: read_port(&mut t, DEFAULT_LB_HTTP_PORT, port_offset),
    };
    t.finish();

    let mut t = r.table("https");
    let mut https = LbHttps {
        bind: t.ip_or("bind", ANY),
        port: read_port(&mut t, DEFAULT_LB_HTTPS_PORT, port_offset),
        cert: t.opt_path("cert", base),
        key: t.opt_path("key", base),
        certificates: vec![],
    };
    if https.cert.is_some() != https.key.is_some() {
        let missing = if https.cert.is_some() { "key" } else { "cert" };
        t.error(
            missing,
            "cert and key must be set together (or neither, for a generated certificate)",
        );
    }
    for mut c in t.tables("certificates") {
        let hosts: Vec<String> = c
            .strings("hosts")
            .into_iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        if hosts.is_empty() {
            c.error("hosts", "name at least one host this certificate is for");
        }
        let cert = c.opt_path("cert", base);
        let key = c.opt_path("key", base);
        match (cert, key) {
            (Some(cert), Some(key)) => https.certificates.push(HostCert { hosts, cert, key }),
            (None, _) => c.error("cert", "missing"),
            (_, None) => c.error("key", "missing"),
        }
        c.finish();
    }
    t.finish();

    let mut t = r.table("status");
    let status = StatusListener {
        bind: t.ip_or("bind", LOCAL),
        port: read_port(&mut t, DEFAULT_LB_STATUS_PORT, port_offset),
    };
    t.finish();
    check_distinct_ports(
        &r,
        "lb",
        &[
            ("http.port", http.port),
            ("https.port", https.port),
            ("status.port", status.port),
        ],
    );

    let mut t = r.table("health_check");
    let health_check = HealthCheck {
        enabled: t.bool_or("enabled", false),
        interval: Duration::from_millis(t.u64_or("interval_ms", 5_000, 100, 3_600_000)),
        timeout: Duration::from_millis(t.u64_or("timeout_ms", 2_000, 10, 600_000)),
    };
    t.finish();

    let mut t = r.table("access_log");
    let format = match t.string_or("format", "combined").as_str() {
        "combined" => AccessLogFormat::Combined,
        "json" => AccessLogFormat::Json,
        "off" => AccessLogFormat::Off,
        other => {
            t.error(
                "format",
                format!("{other:?} is not an access log format: use combined, json or off"),
            );
            AccessLogFormat::Combined
        }
    };
    let access_log = AccessLog {
        format,
        path: t.opt_path("path", base),
    };
    t.finish();

    r.finish();
    LbSettings {
        data_dir,
        port_offset,
        services_file,
        http,
        https,
        status,
        algorithm,
        socket_timeout,
        connect_timeout,
        response_timeout,
        shutdown_grace,
        max_retries,
        eject_base,
        eject_max,
        health_check,
        access_log,
        pool_max_idle_per_member,
        workers,
        fast_path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env::from([(
            crate::SECRET_ENV.to_string(),
            "0123456789abcdef0123".to_string(),
        )])
    }

    #[test]
    fn defaults_are_the_seeds_ports() {
        let c = LbConfig::defaults(&env()).unwrap();
        assert_eq!(c.lb.http.port, 8280);
        assert_eq!(c.lb.https.port, 8243);
        assert_eq!(c.clustering.local_member_port, 4000);
        assert!(c.clustering.enabled);
        assert_eq!(c.lb.socket_timeout, Some(Duration::from_secs(60)));
        assert_eq!(c.lb.algorithm, Algorithm::RoundRobin);
    }

    #[test]
    fn offset_and_zero_timeouts() {
        let c = LbConfig::from_toml_with_env(
            "[lb]\nport_offset = 2\nsocket_timeout_ms = 0\nalgorithm = \"least_connections\"\n",
            "lb.toml",
            Path::new("/etc/wharf"),
            &env(),
        )
        .unwrap();
        assert_eq!(c.lb.http.port, 8282);
        assert_eq!(c.lb.https.port, 8245);
        assert_eq!(c.lb.status.port, 9903);
        assert_eq!(c.clustering.local_member_port, 4002);
        assert_eq!(c.lb.socket_timeout, None);
        assert_eq!(c.lb.algorithm, Algorithm::LeastConnections);
    }

    #[test]
    fn every_error_is_named() {
        let text = r#"
[lb]
algorithm = "random"
bogus = 1
[lb.https]
cert = "a.pem"
[[lb.https.certificates]]
hosts = []
cert = "x.pem"
[lb.access_log]
format = "xml"
[lb.status]
port = 8280
"#;
        let errs = LbConfig::from_toml_with_env(text, "lb.toml", Path::new("."), &env())
            .unwrap_err()
            .to_string();
        for needle in [
            "lb.toml:lb.algorithm",
            "lb.toml:lb.bogus",
            "lb.toml:lb.https.key",
            "lb.https.certificates[0].hosts",
            "lb.https.certificates[0].key",
            "lb.access_log.format",
            "lb.status.port: port 8280 is already used by lb.http.port",
        ] {
            assert!(errs.contains(needle), "{needle:?} missing in:\n{errs}");
        }
    }

    #[test]
    fn clustering_without_a_secret_is_refused() {
        let errs = LbConfig::defaults(&Env::new()).unwrap_err().to_string();
        assert!(errs.contains("clustering.secret_file"), "{errs}");
    }
}
