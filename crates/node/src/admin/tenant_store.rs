//! A management node's tenants: `<data_dir>/admin/tenants.json` (mode
//! 0600). Ids are assigned increasing from the manager's `[tenants] ids`
//! range and never reused: the next id survives deletions.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use wharf_proto::api::TenantLimitsPatch;
use wharf_proto::TenantId;

const FILE_VERSION: u32 = 1;
/// Largest total size of one tenant's configuration values: they travel in
/// gossip with every other tenant's.
pub const MAX_CONFIG_BYTES: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantRecord {
    pub id: TenantId,
    pub domain: String,
    pub active: bool,
    pub created_at_ms: u64,
    #[serde(default)]
    pub limits: TenantLimitsPatch,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantsFile {
    version: u32,
    next_id: TenantId,
    tenants: Vec<TenantRecord>,
}

#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("tenant {0} exists already")]
    Exists(String),
    #[error("no tenant {0}")]
    NotFound(String),
    #[error("no tenant id is left in this manager's range [tenants] ids = \"{0}-{1}\"")]
    NoIdsLeft(TenantId, TenantId),
    #[error("{0}")]
    Invalid(String),
}

pub struct TenantStore {
    path: PathBuf,
    state: Mutex<TenantsFile>,
}

impl TenantStore {
    pub fn open(data_dir: &Path) -> Result<TenantStore, TenantError> {
        let path = data_dir.join("admin").join("tenants.json");
        let file_err = |message: String| TenantError::File {
            path: path.display().to_string(),
            message,
        };
        let state = match std::fs::read(&path) {
            Ok(bytes) => {
                let f: TenantsFile =
                    serde_json::from_slice(&bytes).map_err(|e| file_err(e.to_string()))?;
                if f.version != FILE_VERSION {
                    return Err(file_err(format!("version {} is not supported", f.version)));
                }
                f
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => TenantsFile {
                version: FILE_VERSION,
                next_id: 1,
                tenants: vec![],
            },
            Err(e) => return Err(file_err(e.to_string())),
        };
        Ok(TenantStore {
            path,
            state: Mutex::new(state),
        })
    }

    fn save(&self, f: &TenantsFile) -> Result<(), TenantError> {
        let err = |e: std::io::Error| TenantError::File {
            path: self.path.display().to_string(),
            message: e.to_string(),
        };
        let body = serde_json::to_vec_pretty(f).expect("tenants serialize");
        let result = super::private_file::write_private(&self.path, &body);
        result.map_err(err)
    }

    pub fn list(&self) -> Vec<TenantRecord> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .tenants
            .clone()
    }

    pub fn get(&self, domain: &str) -> Option<TenantRecord> {
        self.list().into_iter().find(|t| t.domain == domain)
    }

    /// Makes a new, active tenant with the next id in `first..=last`.
    pub fn create(
        &self,
        domain: &str,
        limits: TenantLimitsPatch,
        (first, last): (TenantId, TenantId),
        now_ms: u64,
    ) -> Result<TenantRecord, TenantError> {
        wharf_proto::validate_tenant_domain(domain).map_err(TenantError::Invalid)?;
        let mut f = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if f.tenants.iter().any(|t| t.domain == domain) {
            return Err(TenantError::Exists(domain.to_string()));
        }
        let id = f.next_id.max(first);
        if id > last {
            return Err(TenantError::NoIdsLeft(first, last));
        }
        let record = TenantRecord {
            id,
            domain: domain.to_string(),
            active: true,
            created_at_ms: now_ms,
            limits,
            env: BTreeMap::new(),
        };
        let mut next = TenantsFile {
            version: FILE_VERSION,
            next_id: id + 1,
            tenants: f.tenants.clone(),
        };
        next.tenants.push(record.clone());
        self.save(&next)?;
        *f = next;
        Ok(record)
    }

    /// Changes one tenant with `change`; saved before it takes effect.
    pub fn update(
        &self,
        domain: &str,
        change: impl FnOnce(&mut TenantRecord) -> Result<(), TenantError>,
    ) -> Result<TenantRecord, TenantError> {
        let mut f = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut tenants = f.tenants.clone();
        let t = tenants
            .iter_mut()
            .find(|t| t.domain == domain)
            .ok_or_else(|| TenantError::NotFound(domain.to_string()))?;
        change(t)?;
        let updated = t.clone();
        let next = TenantsFile {
            version: FILE_VERSION,
            next_id: f.next_id,
            tenants,
        };
        self.save(&next)?;
        *f = next;
        Ok(updated)
    }

    /// Removes a tenant; its id is never given to another.
    pub fn delete(&self, domain: &str) -> Result<TenantRecord, TenantError> {
        let mut f = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let gone = f
            .tenants
            .iter()
            .find(|t| t.domain == domain)
            .cloned()
            .ok_or_else(|| TenantError::NotFound(domain.to_string()))?;
        let next = TenantsFile {
            version: FILE_VERSION,
            next_id: f.next_id,
            tenants: f
                .tenants
                .iter()
                .filter(|t| t.domain != domain)
                .cloned()
                .collect(),
        };
        self.save(&next)?;
        *f = next;
        Ok(gone)
    }
}

/// Checks configuration values: environment variable names, and a total
/// size gossip can carry.
pub fn check_env(env: &BTreeMap<String, String>) -> Result<(), TenantError> {
    for k in env.keys() {
        let ok = !k.is_empty()
            && !k.starts_with("WHARF_")
            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok {
            return Err(TenantError::Invalid(format!(
                "{k:?} is not a configuration name: use letters, digits and '_' (WHARF_ is reserved)"
            )));
        }
    }
    let size: usize = env.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > MAX_CONFIG_BYTES {
        return Err(TenantError::Invalid(format!(
            "the configuration values are {size} bytes; at most {MAX_CONFIG_BYTES} are allowed"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_and_are_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let s = TenantStore::open(dir.path()).unwrap();
        let range = (1, 1000);
        let a = s.create("a.com", Default::default(), range, 1).unwrap();
        let b = s.create("b.com", Default::default(), range, 2).unwrap();
        assert_eq!((a.id, b.id), (1, 2));
        assert!(matches!(
            s.create("a.com", Default::default(), range, 3),
            Err(TenantError::Exists(_))
        ));
        s.delete("b.com").unwrap();
        let s = TenantStore::open(dir.path()).unwrap();
        let c = s.create("c.com", Default::default(), range, 4).unwrap();
        assert_eq!(c.id, 3, "2 is never given again");
        assert!(matches!(
            s.create("Bad.Com", Default::default(), range, 5),
            Err(TenantError::Invalid(_))
        ));
        // A manager with its own range starts there.
        let d = s
            .create("d.com", Default::default(), (101, 101), 6)
            .unwrap();
        assert_eq!(d.id, 101);
        assert!(matches!(
            s.create("e.com", Default::default(), (101, 101), 7),
            Err(TenantError::NoIdsLeft(101, 101))
        ));
        let off = s
            .update("a.com", |t| {
                t.active = false;
                Ok(())
            })
            .unwrap();
        assert!(!off.active);
        assert!(
            !TenantStore::open(dir.path())
                .unwrap()
                .get("a.com")
                .unwrap()
                .active
        );
    }

    #[test]
    fn configuration_names_and_size_are_checked() {
        let ok = BTreeMap::from([("GREETING".to_string(), "hi".to_string())]);
        check_env(&ok).unwrap();
        for bad in ["", "WHARF_APP_NAME", "A-B"] {
            let env = BTreeMap::from([(bad.to_string(), "x".to_string())]);
            assert!(check_env(&env).is_err(), "{bad}");
        }
        let big = BTreeMap::from([("K".to_string(), "x".repeat(MAX_CONFIG_BYTES))]);
        assert!(check_env(&big).is_err());
    }
}
