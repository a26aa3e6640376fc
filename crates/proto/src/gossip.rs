//! What members gossip about revisions: the manager announces each
//! tenant's current revision, each worker the revision it serves.
//!
//! Keys are per tenant (`rev:<tenant id>`), so a deploy for one tenant
//! changes one key and no other tenant's state. A value names the revision
//! number and the SHA-256 of its manifest: gossip is authenticated by the
//! cluster secret, so a worker can check a manifest it fetched over any
//! channel against it.

use crate::{is_sha256_hex, TenantId};
use std::fmt;

/// Key prefix of a tenant's revision.
pub const REVISION_PREFIX: &str = "rev:";
/// Key prefix of a worker's last failed check-out, per tenant.
pub const SYNC_ERROR_PREFIX: &str = "sync_error:";
/// Key prefix of a tenant the manager knows: `tenant:<domain>` → settings.
pub const TENANT_PREFIX: &str = "tenant:";
/// Key prefix of what a node's applications of one tenant have answered:
/// `stats:<tenant id>` → `{"<context>": [requests, 5xx answers]}`.
pub const STATS_PREFIX: &str = "stats:";

/// Requests and 5xx answers by context path.
pub type AppCounts = std::collections::BTreeMap<String, (u64, u64)>;

/// A revision as gossiped: `<number>:<manifest sha256>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct RevisionRef {
    pub number: u64,
    pub manifest_sha256: String,
}

impl fmt::Display for RevisionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.number, self.manifest_sha256)
    }
}

impl std::str::FromStr for RevisionRef {
    type Err = String;
    fn from_str(s: &str) -> Result<RevisionRef, String> {
        let (n, sha) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?} is not <revision>:<sha256>"))?;
        let number = n
            .parse()
            .map_err(|_| format!("{n:?} is not a revision number"))?;
        if !is_sha256_hex(sha) {
            return Err(format!("{sha:?} is not a SHA-256"));
        }
        Ok(RevisionRef {
            number,
            manifest_sha256: sha.to_string(),
        })
    }
}

pub fn revision_key(tenant: TenantId) -> String {
    format!("{REVISION_PREFIX}{tenant}")
}

pub fn sync_error_key(tenant: TenantId) -> String {
    format!("{SYNC_ERROR_PREFIX}{tenant}")
}

/// The tenant of a per-tenant key with `prefix`, if `key` is one.
pub fn tenant_of_key(key: &str, prefix: &str) -> Option<TenantId> {
    key.strip_prefix(prefix)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_refs_round_trip_and_bad_ones_are_named() {
        let r = RevisionRef {
            number: 7,
            manifest_sha256: "b".repeat(64),
        };
        assert_eq!(r.to_string().parse::<RevisionRef>().unwrap(), r);
        assert!("7"
            .parse::<RevisionRef>()
            .unwrap_err()
            .contains("not <revision>"));
        assert!("x:ab"
            .parse::<RevisionRef>()
            .unwrap_err()
            .contains("revision number"));
        assert!("7:ab"
            .parse::<RevisionRef>()
            .unwrap_err()
            .contains("SHA-256"));
        assert_eq!(tenant_of_key("rev:12", REVISION_PREFIX), Some(12));
        assert_eq!(tenant_of_key("rev:x", REVISION_PREFIX), None);
        assert_eq!(revision_key(3), "rev:3");
    }
}
