//! What a member publishes, as typed values and as gossip key-values.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use wharf_proto::gossip::{
    tenant_of_key, AppCounts, RevisionRef, REVISION_PREFIX, STATS_PREFIX, SYNC_ERROR_PREFIX,
    TENANT_PREFIX,
};
use wharf_proto::{TenantId, TenantSettings};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Lb,
    Manager,
    Worker,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    Starting,
    Ready,
    Draining,
    /// Published just before a graceful exit: drop the member at once.
    Left,
}

macro_rules! string_enum {
    ($t:ty, $what:literal, $($v:ident = $s:literal),+) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),+ }
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($s => Ok(Self::$v),)+
                    other => Err(format!("{other:?} is not a {}", $what)),
                }
            }
        }
    };
}

string_enum!(
    Role,
    "role",
    Lb = "lb",
    Manager = "manager",
    Worker = "worker"
);
string_enum!(
    MemberState,
    "member state",
    Starting = "starting",
    Ready = "ready",
    Draining = "draining",
    Left = "left"
);

/// The properties one member publishes (everything but its identity).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MemberInfo {
    pub role: Role,
    pub domain: String,
    /// The `subDomain` property (`mgt`, `worker`), if set.
    pub sub_domain: Option<String>,
    pub state: MemberState,
    pub http_url: Option<String>,
    pub https_url: Option<String>,
    /// `host:port` where the load balancer reaches the member's plain HTTP
    /// listener: its cluster address and the port it really bound (the
    /// URLs above name the public, proxied ports).
    pub http_addr: Option<String>,
    /// `host:port` of the member's HTTPS listener.
    pub https_addr: Option<String>,
    /// Lowercase hex SHA-256 of the certificate the HTTPS listener
    /// presents. Gossip is authenticated, so peers pin it instead of
    /// trusting a certificate authority.
    pub tls_sha256: Option<String>,
    /// `host:port` of the member's status listener (`/health/ready`).
    pub status_addr: Option<String>,
    pub http_proxy_port: Option<u16>,
    pub https_proxy_port: Option<u16>,
    pub host_name: Option<String>,
    pub mgt_host_name: Option<String>,
    /// Per tenant: the revision a manager announces as current, or the
    /// revision a worker serves.
    pub revisions: BTreeMap<TenantId, RevisionRef>,
    /// Per tenant: why a worker could not check out the announced revision.
    pub sync_errors: BTreeMap<TenantId, String>,
    /// A manager's active tenants by domain: id, limits, configuration.
    pub tenants: BTreeMap<String, TenantSettings>,
    /// Per tenant, what this member's applications have answered.
    pub stats: BTreeMap<TenantId, AppCounts>,
    /// All configured properties, placeholders expanded.
    pub properties: BTreeMap<String, String>,
}

const PROP: &str = "prop:";

impl MemberInfo {
    /// A member with only its role, domain, sub-domain and state set.
    pub fn new(
        role: Role,
        domain: &str,
        sub_domain: Option<&str>,
        state: MemberState,
    ) -> MemberInfo {
        MemberInfo {
            role,
            domain: domain.to_string(),
            sub_domain: sub_domain.map(str::to_string),
            state,
            http_url: None,
            https_url: None,
            http_addr: None,
            https_addr: None,
            tls_sha256: None,
            status_addr: None,
            http_proxy_port: None,
            https_proxy_port: None,
            host_name: None,
            mgt_host_name: None,
            revisions: BTreeMap::new(),
            sync_errors: BTreeMap::new(),
            tenants: BTreeMap::new(),
            stats: BTreeMap::new(),
            properties: BTreeMap::new(),
        }
    }

    /// The gossip key-values for this member.
    pub fn to_key_values(&self) -> Vec<(String, String)> {
        let mut kv = vec![
            ("role".to_string(), self.role.to_string()),
            ("domain".to_string(), self.domain.clone()),
            ("state".to_string(), self.state.to_string()),
        ];
        let optional = [
            ("sub_domain", self.sub_domain.clone()),
            ("http_url", self.http_url.clone()),
            ("https_url", self.https_url.clone()),
            ("http_addr", self.http_addr.clone()),
            ("https_addr", self.https_addr.clone()),
            ("tls_sha256", self.tls_sha256.clone()),
            ("status_addr", self.status_addr.clone()),
            (
                "http_proxy_port",
                self.http_proxy_port.map(|p| p.to_string()),
            ),
            (
                "https_proxy_port",
                self.https_proxy_port.map(|p| p.to_string()),
            ),
            ("host_name", self.host_name.clone()),
            ("mgt_host_name", self.mgt_host_name.clone()),
        ];
        kv.extend(
            optional
                .into_iter()
                .filter_map(|(k, v)| Some((k.to_string(), v?))),
        );
        kv.extend(
            self.properties
                .iter()
                .map(|(k, v)| (format!("{PROP}{k}"), v.clone())),
        );
        kv.extend(
            self.revisions
                .iter()
                .map(|(t, r)| (format!("{REVISION_PREFIX}{t}"), r.to_string())),
        );
        kv.extend(
            self.sync_errors
                .iter()
                .map(|(t, e)| (format!("{SYNC_ERROR_PREFIX}{t}"), e.clone())),
        );
        kv.extend(self.stats.iter().map(|(t, c)| {
            (
                format!("{STATS_PREFIX}{t}"),
                serde_json::to_string(c).expect("counts serialize"),
            )
        }));
        kv.extend(self.tenants.iter().map(|(d, t)| {
            (
                format!("{TENANT_PREFIX}{d}"),
                serde_json::to_string(t).expect("tenant settings serialize"),
            )
        }));
        kv
    }

    /// Reads a member's key-values back; unknown keys are ignored so that
    /// newer members can publish more.
    pub fn from_key_values<'a>(
        kv: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<MemberInfo, String> {
        let map: BTreeMap<&str, &str> = kv.into_iter().collect();
        let need = |k: &str| map.get(k).copied().ok_or_else(|| format!("missing {k:?}"));
        let opt = |k: &str| map.get(k).map(|v| v.to_string()).filter(|v| !v.is_empty());
        let port = |k: &str| -> Result<Option<u16>, String> {
            map.get(k)
                .map(|v| v.parse().map_err(|_| format!("{k} {v:?} is not a port")))
                .transpose()
        };
        let properties = map
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(PROP)?.to_string(), v.to_string())))
            .collect();
        let mut revisions = BTreeMap::new();
        let mut sync_errors = BTreeMap::new();
        let mut tenants = BTreeMap::new();
        let mut stats = BTreeMap::new();
        for (k, v) in &map {
            if let Some(t) = tenant_of_key(k, STATS_PREFIX) {
                if let Ok(c) = serde_json::from_str::<AppCounts>(v) {
                    stats.insert(t, c);
                }
                continue;
            }
            if let Some(t) = tenant_of_key(k, REVISION_PREFIX) {
                // An empty value withdraws the revision.
                if !v.is_empty() {
                    revisions.insert(t, v.parse::<RevisionRef>()?);
                }
            } else if let Some(t) = tenant_of_key(k, SYNC_ERROR_PREFIX) {
                if !v.is_empty() {
                    sync_errors.insert(t, v.to_string());
                }
            } else if let Some(domain) = k.strip_prefix(TENANT_PREFIX) {
                // One unreadable tenant (a newer manager's format) must not
                // hide the member: it is skipped.
                match serde_json::from_str::<TenantSettings>(v) {
                    Ok(t) => {
                        tenants.insert(domain.to_string(), t);
                    }
                    Err(e) if !v.is_empty() => {
                        tracing::debug!(tenant = %domain, error = %e, "ignoring unreadable tenant settings")
                    }
                    Err(_) => {}
                }
            }
        }
        Ok(MemberInfo {
            role: need("role")?.parse()?,
            domain: need("domain")?.to_string(),
            sub_domain: opt("sub_domain"),
            state: need("state")?.parse()?,
            http_url: opt("http_url"),
            https_url: opt("https_url"),
            http_addr: opt("http_addr"),
            https_addr: opt("https_addr"),
            tls_sha256: opt("tls_sha256"),
            status_addr: opt("status_addr"),
            http_proxy_port: port("http_proxy_port")?,
            https_proxy_port: port("https_proxy_port")?,
            host_name: opt("host_name"),
            mgt_host_name: opt("mgt_host_name"),
            revisions,
            sync_errors,
            tenants,
            stats,
            properties,
        })
    }
}

/// Expands the seed's `${hostName}`, `${httpPort}`, `${httpsPort}`,
/// `${httpProxyPort}` and `${httpsProxyPort}` placeholders in `value`.
/// An unknown placeholder is an error naming it.
pub fn expand_placeholders(value: &str, vars: &BTreeMap<&str, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed placeholder in {value:?}"))?;
        let name = &after[..end];
        let v = vars.get(name).ok_or_else(|| {
            let known: Vec<String> = vars.keys().map(|k| format!("${{{k}}}")).collect();
            format!(
                "unknown placeholder ${{{name}}} in {value:?} (known: {})",
                known.join(", ")
            )
        })?;
        out.push_str(v);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker() -> MemberInfo {
        MemberInfo {
            role: Role::Worker,
            domain: "wso2.as.domain".into(),
            sub_domain: Some("worker".into()),
            state: MemberState::Ready,
            http_url: Some("http://10.0.0.2:9765".into()),
            https_url: Some("https://10.0.0.2:9445".into()),
            http_addr: Some("10.0.0.2:9765".into()),
            https_addr: Some("10.0.0.2:9445".into()),
            tls_sha256: Some("c".repeat(64)),
            status_addr: Some("10.0.0.2:9902".into()),
            http_proxy_port: Some(8280),
            https_proxy_port: None,
            host_name: Some("as.cloud-test.example.com".into()),
            mgt_host_name: None,
            revisions: BTreeMap::from([(
                0,
                RevisionRef {
                    number: 4,
                    manifest_sha256: "d".repeat(64),
                },
            )]),
            sync_errors: BTreeMap::from([(7, "revision 2: not a component".into())]),
            stats: BTreeMap::from([(0, BTreeMap::from([("/hello".to_string(), (10, 1))]))]),
            tenants: BTreeMap::from([(
                "example.com".into(),
                TenantSettings {
                    id: 7,
                    limits: wharf_proto::TenantLimits {
                        max_apps: 10,
                        memory_limit_mb: 64,
                        max_instances: 20,
                        requests_per_second: 100,
                    },
                    env: BTreeMap::from([("GREETING".into(), "hi".into())]),
                },
            )]),
            properties: BTreeMap::from([("subDomain".into(), "worker".into())]),
        }
    }

    #[test]
    fn key_values_round_trip() {
        let m = worker();
        let kv = m.to_key_values();
        let back =
            MemberInfo::from_key_values(kv.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn bad_key_values_are_named() {
        let err =
            MemberInfo::from_key_values([("role", "boss"), ("domain", "d"), ("state", "ready")])
                .unwrap_err();
        assert!(err.contains("\"boss\" is not a role"), "{err}");
        let err = MemberInfo::from_key_values([("role", "lb"), ("state", "ready")]).unwrap_err();
        assert!(err.contains("missing \"domain\""), "{err}");
    }

    #[test]
    fn placeholders_expand_like_the_seed() {
        let vars = BTreeMap::from([
            ("hostName", "mgt.example.com".to_string()),
            ("httpsPort", "9444".to_string()),
        ]);
        assert_eq!(
            expand_placeholders("https://${hostName}:${httpsPort}/services/", &vars).unwrap(),
            "https://mgt.example.com:9444/services/"
        );
        let err = expand_placeholders("${carbonHome}/x", &vars).unwrap_err();
        assert!(
            err.contains("${carbonHome}") && err.contains("${hostName}"),
            "{err}"
        );
        assert!(expand_placeholders("${hostName", &vars).is_err());
    }
}
