//! Every type Wharf sends between processes or stores for another process
//! to read, in one place and versioned: the revision manifest of the
//! deployment synchronizer ([`Manifest`]), what members gossip about
//! revisions ([`gossip`]), and the admin API's bodies ([`api`]).

pub mod api;
pub mod context;
pub mod gossip;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A tenant's stable integer id (assigned increasing, never reused).
pub type TenantId = u32;

/// The super tenant: the default, owner of un-prefixed URLs.
pub const SUPER_TENANT: TenantId = 0;

/// The manifest format this build writes; it reads this one only and says
/// so clearly for any other.
pub const MANIFEST_VERSION: u32 = 1;

/// One revision of a tenant's applications: every application served at
/// that revision, by context path. A revision is whole: a worker serves all
/// of it or none of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`MANIFEST_VERSION`] when written.
    pub version: u32,
    /// 1, 2, 3, … per repository namespace.
    pub revision: u64,
    /// The revision this one was made from (`None` for the first).
    pub parent: Option<u64>,
    /// Milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// Who made it (the admin user).
    pub author: String,
    /// What changed, for the history (`deploy /hello`, `rollback to 3`).
    pub message: String,
    /// Context path (`/hello`, `/` for the root) → the application.
    pub apps: BTreeMap<String, AppEntry>,
}

/// One application of a revision: its content by hash, and its limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppEntry {
    /// Lowercase hex SHA-256 of the component: the blob's name.
    pub sha256: String,
    pub size: u64,
    /// When this content was deployed at this context (milliseconds since
    /// the Unix epoch); kept across revisions that leave the app unchanged.
    #[serde(default)]
    pub deployed_at_ms: u64,
    /// Who deployed this content here.
    #[serde(default)]
    pub deployed_by: String,
    /// Per-application limits that override the node's, when set.
    #[serde(default, skip_serializing_if = "AppLimits::is_default")]
    pub limits: AppLimits,
}

/// Limits one application may have set below the node's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit_mb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_instances: Option<u32>,
}

impl AppLimits {
    pub fn is_default(&self) -> bool {
        *self == AppLimits::default()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("not a revision manifest: {0}")]
    Malformed(String),
    #[error("revision manifest version {found} is not supported (this build reads version {MANIFEST_VERSION})")]
    Version { found: u32 },
    #[error("application {context:?}: {message}")]
    App { context: String, message: String },
}

impl Manifest {
    /// The SHA-256 of [`Manifest::to_json`]: what the manager gossips so
    /// that a worker can check the manifest it fetched.
    pub fn digest(&self) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(self.to_json()))
    }

    /// The application table as `context → sha256`, for comparisons.
    pub fn contents(&self) -> BTreeMap<&str, &str> {
        self.apps
            .iter()
            .map(|(c, a)| (c.as_str(), a.sha256.as_str()))
            .collect()
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a manifest serializes")
    }

    /// Reads and checks a manifest: its version, and that every entry names
    /// a SHA-256 and a context path that can be served.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        let v: Version =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Malformed(e.to_string()))?;
        if v.version != MANIFEST_VERSION {
            return Err(ManifestError::Version { found: v.version });
        }
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Malformed(e.to_string()))?;
        for (context, app) in &m.apps {
            let bad = |message: &str| ManifestError::App {
                context: context.clone(),
                message: message.to_string(),
            };
            if !is_sha256_hex(&app.sha256) {
                return Err(bad("sha256 is not 64 lowercase hex digits"));
            }
            if let Err(e) = context::validate_context(context) {
                return Err(bad(&e));
            }
        }
        Ok(m)
    }
}

/// 64 lowercase hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            version: MANIFEST_VERSION,
            revision: 3,
            parent: Some(2),
            created_at_ms: 1_795_607_212_000,
            author: "admin".into(),
            message: "deploy /hello".into(),
            apps: BTreeMap::from([(
                "/hello".to_string(),
                AppEntry {
                    sha256: "a".repeat(64),
                    size: 1234,
                    deployed_at_ms: 1_795_607_212_000,
                    deployed_by: "admin".into(),
                    limits: AppLimits {
                        memory_limit_mb: Some(64),
                        ..Default::default()
                    },
                },
            )]),
        }
    }

    #[test]
    fn round_trips() {
        let m = manifest();
        assert_eq!(Manifest::from_json(&m.to_json()).unwrap(), m);
    }

    #[test]
    fn other_versions_and_bad_entries_are_refused_clearly() {
        let mut m = manifest();
        m.version = 2;
        let e = Manifest::from_json(&m.to_json()).unwrap_err().to_string();
        assert!(e.contains("version 2 is not supported"), "{e}");
        let mut m = manifest();
        m.apps.get_mut("/hello").unwrap().sha256 = "XYZ".into();
        let e = Manifest::from_json(&m.to_json()).unwrap_err().to_string();
        assert!(e.contains("\"/hello\"") && e.contains("sha256"), "{e}");
        let mut m = manifest();
        let app = m.apps.remove("/hello").unwrap();
        m.apps.insert("/a/../b".into(), app);
        assert!(Manifest::from_json(&m.to_json()).is_err());
        assert!(Manifest::from_json(b"{\"version\": 1, \"surprise\": true}").is_err());
        assert!(Manifest::from_json(b"not json").is_err());
    }
}

/// The limits a tenant's applications run under on every node, beside the
/// node's own (the lower wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantLimits {
    /// Applications the tenant may have deployed at once.
    pub max_apps: u32,
    /// Linear memory one instance of the tenant's applications may use.
    pub memory_limit_mb: u64,
    /// Instances of the tenant's applications that may run at once, per node.
    pub max_instances: u32,
    /// Requests per second the tenant's applications get, per node (0: no limit).
    pub requests_per_second: u32,
}

/// What the manager publishes of an active tenant, under
/// `tenant:<domain>`: its id, limits and configuration values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    pub id: TenantId,
    pub limits: TenantLimits,
    /// Environment variables only this tenant's applications see.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

/// Checks a tenant domain: lowercase DNS labels (`example.com`), as
/// tenants are named in `/t/<domain>/` URLs.
pub fn validate_tenant_domain(domain: &str) -> Result<(), String> {
    if domain.is_empty() || domain.len() > 253 {
        return Err(format!(
            "tenant domain {domain:?} must be 1 to 253 characters"
        ));
    }
    for label in domain.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(format!(
                "tenant domain {domain:?} is not a domain name: use lowercase letters, digits and '-' in dot-separated labels, e.g. example.com"
            ));
        }
    }
    if domain == "super" {
        return Err("\"super\" names the super tenant".into());
    }
    Ok(())
}

#[cfg(test)]
mod tenant_tests {
    use super::*;

    #[test]
    fn tenant_domains() {
        for ok in ["example.com", "a.b-c.org", "x1"] {
            validate_tenant_domain(ok).unwrap();
        }
        for bad in [
            "",
            "Example.com",
            "a..b",
            "-a.com",
            "a_b.com",
            "a.com/x",
            "super",
        ] {
            assert!(validate_tenant_domain(bad).is_err(), "{bad}");
        }
    }
}
