//! Talking to a management node's admin API: which manager, how to trust
//! its certificate, and who is calling (a saved login session, or a user
//! and password from the environment).

use anyhow::{bail, Context};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use wharf_proto::api::{ErrorBody, API_PREFIX};

/// Where the admin API is and how to reach it; shared by every command
/// that calls it.
#[derive(clap::Args, Debug, Clone)]
pub struct ManagerArgs {
    /// The management node (or the load balancer's management host), e.g.
    /// https://mgt.localhost:8243.
    #[arg(long, env = "WHARF_MANAGER", default_value = "https://localhost:9443")]
    pub manager: String,

    /// Trust this PEM certificate (e.g. the generated one, <data_dir>/tls/cert.pem).
    #[arg(long, env = "WHARF_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,

    /// Do not check the manager's certificate at all (testing only).
    #[arg(long, conflicts_with = "ca_cert")]
    pub insecure: bool,

    /// The admin user; with WHARF_PASSWORD set, every call signs in with it
    /// instead of a saved session.
    #[arg(long, env = "WHARF_USER", default_value = "admin")]
    pub user: String,

    /// Act for this tenant (the super admin; a tenant admin always acts
    /// for their own).
    #[arg(long, env = "WHARF_TENANT", value_name = "DOMAIN")]
    pub tenant: Option<String>,
}

/// Saved login sessions, by manager URL: `~/.config/wharf/credentials.json`
/// (mode 0600).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Credentials {
    managers: BTreeMap<String, Saved>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Saved {
    user: String,
    token: String,
    expires_at_ms: u64,
}

fn credentials_path() -> anyhow::Result<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .context("neither XDG_CONFIG_HOME nor HOME is set: cannot keep the login")?;
    Ok(base.join("wharf").join("credentials.json"))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn load_credentials() -> Credentials {
    credentials_path()
        .ok()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn store_credentials(c: &Credentials) -> anyhow::Result<PathBuf> {
    use std::io::Write;
    let path = credentials_path()?;
    let dir = path.parent().expect("has a directory");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(".credentials.json.tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(&serde_json::to_vec_pretty(c)?)?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// How a call proves who it is.
enum Auth {
    Bearer(String),
    Basic(String, String),
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    auth: Option<Auth>,
    tenant: Option<String>,
    pub runtime: tokio::runtime::Runtime,
}

impl ManagerArgs {
    /// The manager's URL without a trailing slash; `https://` is assumed.
    pub fn base(&self) -> String {
        let m = self.manager.trim_end_matches('/');
        if m.contains("://") {
            m.to_string()
        } else {
            format!("https://{m}")
        }
    }

    fn http(&self) -> anyhow::Result<reqwest::Client> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("wharf/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &self.ca_cert {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("{} is not a PEM certificate", path.display()))?;
            b = b.add_root_certificate(cert);
        }
        if self.insecure {
            b = b.danger_accept_invalid_certs(true);
        }
        // `*.localhost` names the local machine (RFC 6761), though the
        // system resolver may not know it: the local cluster's manager is
        // `mgt.localhost`.
        if let Ok(url) = reqwest::Url::parse(&self.base()) {
            if let Some(host) = url.host_str() {
                if host == "localhost" || host.ends_with(".localhost") {
                    let port = url.port_or_known_default().unwrap_or(443);
                    b = b.resolve(host, std::net::SocketAddr::from(([127, 0, 0, 1], port)));
                }
            }
        }
        b.build().context("building the HTTPS client")
    }

    /// A client signed in as the environment or the saved session says.
    pub fn client(&self) -> anyhow::Result<Client> {
        let auth = if let Ok(password) = std::env::var("WHARF_PASSWORD") {
            Some(Auth::Basic(self.user.clone(), password))
        } else {
            load_credentials()
                .managers
                .get(&self.base())
                .filter(|s| s.expires_at_ms > now_ms())
                .map(|s| Auth::Bearer(s.token.clone()))
        };
        self.unauthenticated().map(|mut c| {
            c.auth = auth;
            c
        })
    }

    /// A client that signs in as nobody (for `login`).
    pub fn unauthenticated(&self) -> anyhow::Result<Client> {
        Ok(Client {
            http: self.http()?,
            base: self.base(),
            auth: None,
            tenant: self.tenant.clone(),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?,
        })
    }

    /// Keeps a session for this manager.
    pub fn save_session(
        &self,
        user: &str,
        token: &str,
        expires_in_s: u64,
    ) -> anyhow::Result<PathBuf> {
        let mut c = load_credentials();
        c.managers.insert(
            self.base(),
            Saved {
                user: user.to_string(),
                token: token.to_string(),
                expires_at_ms: now_ms() + expires_in_s * 1000,
            },
        );
        store_credentials(&c)
    }

    /// Forgets this manager's session.
    pub fn forget_session(&self) -> anyhow::Result<()> {
        let mut c = load_credentials();
        if c.managers.remove(&self.base()).is_some() {
            store_credentials(&c)?;
        }
        Ok(())
    }
}

/// An error answer of the admin API.
#[derive(Debug)]
pub struct ApiFailure {
    pub status: reqwest::StatusCode,
    pub body: ErrorBody,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.body.error, self.status)
    }
}

impl std::error::Error for ApiFailure {}

impl Client {
    pub fn url(&self, path: &str) -> String {
        format!("{}{API_PREFIX}{path}", self.base)
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self.http.request(method, self.url(path));
        if let Some(t) = &self.tenant {
            r = r.query(&[("tenant", t)]);
        }
        match &self.auth {
            Some(Auth::Bearer(t)) => r.bearer_auth(t),
            Some(Auth::Basic(u, p)) => r.basic_auth(u, Some(p)),
            None => r,
        }
    }

    /// Sends `req` and reads a JSON answer; an error answer becomes an
    /// [`ApiFailure`] with the manager's own message.
    pub async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> anyhow::Result<T> {
        let resp = req.send().await.map_err(|e| {
            let mut msg = format!("cannot reach the manager at {}: {e}", self.base);
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(&format!(": {s}"));
                source = s.source();
            }
            if msg.contains("certificate") {
                msg.push_str("\n(a generated certificate? pass --ca-cert <data_dir>/tls/cert.pem)");
            }
            anyhow::anyhow!(msg)
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await.context("reading the manager's answer")?;
        if status.is_success() {
            if bytes.is_empty() {
                return serde_json::from_slice(b"null").context("an empty answer");
            }
            return serde_json::from_slice(&bytes).with_context(|| {
                format!("the manager's answer is not what was expected ({status})")
            });
        }
        let body = serde_json::from_slice::<ErrorBody>(&bytes).unwrap_or_else(|_| ErrorBody {
            error: String::from_utf8_lossy(&bytes).trim().to_string(),
            revision: None,
        });
        let mut failure = ApiFailure { status, body };
        if status == reqwest::StatusCode::UNAUTHORIZED && self.auth.is_none() {
            failure
                .body
                .error
                .push_str(" (run `wharf login`, or set WHARF_USER and WHARF_PASSWORD)");
        }
        Err(failure.into())
    }

    pub fn block<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }
}

/// Fails unless `context` looks like a context path (the manager checks
/// it fully).
pub fn check_context(context: &str) -> anyhow::Result<()> {
    if let Err(e) = wharf_proto::context::validate_deploy_context(context) {
        bail!("--context: {e}");
    }
    Ok(())
}
