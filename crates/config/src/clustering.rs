//! `[clustering]`: the seed's axis2.xml clustering settings, shared by the
//! node and the load balancer.

use crate::reader::Reader;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The environment variable that may hold the cluster secret.
pub const SECRET_ENV: &str = "WHARF_CLUSTER_SECRET";

/// Shortest secret accepted, in bytes: the key is derived from it, so a
/// short one would be guessable.
pub const MIN_SECRET_LEN: usize = 16;

#[derive(Clone, PartialEq, Eq)]
pub struct ClusteringConfig {
    pub enabled: bool,
    /// The cluster domain this member belongs to (`wso2.as.domain` in the seed).
    pub domain: String,
    /// The address other members reach this one on (`localMemberHost`).
    pub local_member_host: String,
    /// The UDP port of cluster traffic (`localMemberPort`), plus the port offset.
    pub local_member_port: u16,
    /// Well-known members, `host:port` (`<members>`).
    pub members: Vec<String>,
    /// Member properties (`subDomain`, `backendServerURL`, …) with
    /// `${hostName}`-style placeholders not yet expanded.
    pub properties: BTreeMap<String, String>,
    /// The shared secret that authenticates and encrypts cluster traffic.
    pub secret: Option<Vec<u8>>,
    /// Run without a secret (plain, unauthenticated traffic). Never the default.
    pub insecure: bool,
    pub gossip_interval: Duration,
    /// How long a silent member stays in the views as down before it is forgotten.
    pub dead_member_grace: Duration,
}

impl std::fmt::Debug for ClusteringConfig {
    // Never prints the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusteringConfig")
            .field("enabled", &self.enabled)
            .field("domain", &self.domain)
            .field("local_member_host", &self.local_member_host)
            .field("local_member_port", &self.local_member_port)
            .field("members", &self.members)
            .field("properties", &self.properties)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("insecure", &self.insecure)
            .finish_non_exhaustive()
    }
}

impl ClusteringConfig {
    /// Reads `[clustering]`. `default_port` is the role's default member
    /// port (4000 for the load balancer, as in the seed); `env` supplies
    /// `WHARF_CLUSTER_SECRET` when no `secret_file` is set.
    pub fn read(
        mut r: Reader,
        base: &Path,
        port_offset: u16,
        default_port: u16,
        default_enabled: bool,
        env: &BTreeMap<String, String>,
    ) -> ClusteringConfig {
        let enabled = r.bool_or("enabled", default_enabled);
        let scheme = r.string_or("membership_scheme", "wka");
        if scheme != "wka" {
            r.error(
                "membership_scheme",
                format!("{scheme:?} is not supported; the supported scheme is \"wka\" (well-known addresses)"),
            );
        }
        let domain = r.string_or("domain", "wharf.domain");
        if domain.is_empty() {
            r.error("domain", "must not be empty");
        }
        let local_member_host = r.string_or("local_member_host", "127.0.0.1");
        let configured = r.u16_or("local_member_port", default_port);
        let local_member_port = crate::offset_port(configured, port_offset).unwrap_or_else(|| {
            r.error(
                "local_member_port",
                format!("{configured} + port_offset {port_offset} is above 65535"),
            );
            configured
        });
        let members = r.strings("members");
        for (i, m) in members.iter().enumerate() {
            let ok = m
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !ok {
                r.error(&format!("members[{i}]"), format!("{m:?} is not host:port"));
            }
        }
        let properties = r.string_map("properties");
        let secret_file: Option<PathBuf> = r.opt_path("secret_file", base);
        let insecure = r.bool_or("insecure", false);
        let gossip_interval =
            Duration::from_millis(r.u64_or("gossip_interval_ms", 200, 10, 60_000));
        let dead_member_grace =
            Duration::from_millis(r.u64_or("dead_member_grace_ms", 60_000, 1_000, 86_400_000));

        let secret = match (&secret_file, env.get(SECRET_ENV)) {
            (Some(path), _) => match std::fs::read(path) {
                Ok(bytes) => Some(trim_secret(bytes)),
                Err(e) => {
                    r.error(
                        "secret_file",
                        format!("cannot read {}: {e}", path.display()),
                    );
                    None
                }
            },
            (None, Some(v)) => Some(trim_secret(v.clone().into_bytes())),
            (None, None) => None,
        };
        if let Some(s) = &secret {
            if s.len() < MIN_SECRET_LEN {
                let key = if secret_file.is_some() {
                    "secret_file"
                } else {
                    "secret"
                };
                r.error(
                    key,
                    format!(
                        "the cluster secret is {} bytes; use at least {MIN_SECRET_LEN}",
                        s.len()
                    ),
                );
            }
        } else if enabled && !insecure {
            r.error(
                "secret_file",
                format!(
                    "clustering needs a shared secret: set secret_file (a file readable only by wharf) \
                     or the {SECRET_ENV} environment variable, e.g. `openssl rand -hex 32`; \
                     or set insecure = true to run without one (not for production)"
                ),
            );
        }
        r.finish();
        ClusteringConfig {
            enabled,
            domain,
            local_member_host,
            local_member_port,
            members,
            properties,
            secret,
            insecure,
            gossip_interval,
            dead_member_grace,
        }
    }
}

/// Secrets kept in files or variables often end in a newline; it is not part of the secret.
fn trim_secret(mut bytes: Vec<u8>) -> Vec<u8> {
    while bytes.last().is_some_and(|b| b.is_ascii_whitespace()) {
        bytes.pop();
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, env: &[(&str, &str)]) -> Result<ClusteringConfig, crate::ConfigErrors> {
        let mut r = Reader::parse(text, "c.toml")?;
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let c = ClusteringConfig::read(r.table("clustering"), Path::new("."), 2, 4000, false, &env);
        r.into_result().map(|()| c)
    }

    #[test]
    fn the_seed_settings_map() {
        let text = r#"
[clustering]
enabled = true
membership_scheme = "wka"
domain = "wso2.as.domain"
local_member_host = "mgt.as.cloud-test.example.com"
local_member_port = 4250
members = ["127.0.0.1:4000"]
[clustering.properties]
subDomain = "mgt"
backendServerURL = "https://${hostName}:${httpsPort}/services/"
"#;
        let c = read(text, &[(SECRET_ENV, "0123456789abcdef0123456789abcdef\n")]).unwrap();
        assert!(c.enabled);
        assert_eq!(c.domain, "wso2.as.domain");
        assert_eq!(c.local_member_port, 4252, "port offset applies");
        assert_eq!(c.members, ["127.0.0.1:4000"]);
        assert_eq!(c.properties["subDomain"], "mgt");
        assert_eq!(
            c.secret.as_deref(),
            Some(&b"0123456789abcdef0123456789abcdef"[..])
        );
        assert!(
            !format!("{c:?}").contains("0123456789"),
            "the secret is never printed"
        );
    }

    #[test]
    fn no_secret_is_refused_with_how_to_set_one() {
        let err = read("[clustering]\nenabled = true\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("c.toml:clustering.secret_file:") && err.contains(SECRET_ENV),
            "{err}"
        );
        let c = read("[clustering]\nenabled = true\ninsecure = true\n", &[]).unwrap();
        assert!(c.insecure && c.secret.is_none());
    }

    #[test]
    fn bad_values_are_named() {
        let text =
            "[clustering]\nmembership_scheme = \"multicast\"\nmembers = [\"nohost\", \"h:0\"]\n";
        let err = read(text, &[(SECRET_ENV, "short")])
            .unwrap_err()
            .to_string();
        for needle in [
            "clustering.membership_scheme: \"multicast\" is not supported; the supported scheme is \"wka\"",
            "clustering.members[0]: \"nohost\" is not host:port",
            "clustering.members[1]",
            "the cluster secret is 5 bytes",
        ] {
            assert!(err.contains(needle), "{needle} missing from {err}");
        }
    }
}
