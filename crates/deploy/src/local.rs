//! A node's own copy of what it serves: per tenant the manifest of the
//! revision it serves, and the components, under
//! `<data_dir>/deployment/checkout/`. A worker that restarts serves this
//! copy at once, before (or without) reaching the repository.

use crate::blobs::BlobDir;
use crate::tree::parse_manifest;
use crate::{io, write_atomic, RepoError};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use wharf_proto::{Manifest, TenantId, TenantSettings};

pub struct LocalStore {
    tenants_dir: PathBuf,
    directory: PathBuf,
    blobs: BlobDir,
}

impl LocalStore {
    pub fn open(root: &Path) -> Result<LocalStore, RepoError> {
        let tenants_dir = root.join("tenants");
        std::fs::create_dir_all(&tenants_dir).map_err(io(&tenants_dir))?;
        Ok(LocalStore {
            blobs: BlobDir::open(&root.join("blobs"))?,
            directory: root.join("directory.json"),
            tenants_dir,
        })
    }

    /// The tenants as the manager last published them (domain → settings).
    pub fn directory(&self) -> Result<BTreeMap<String, TenantSettings>, RepoError> {
        match std::fs::read(&self.directory) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| RepoError::Corrupt {
                path: self.directory.clone(),
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(io(&self.directory)(e)),
        }
    }

    pub fn set_directory(&self, d: &BTreeMap<String, TenantSettings>) -> Result<(), RepoError> {
        write_atomic(
            &self.directory,
            &serde_json::to_vec_pretty(d).expect("tenant settings serialize"),
        )
    }

    pub fn blobs(&self) -> &BlobDir {
        &self.blobs
    }

    fn manifest_path(&self, tenant: TenantId) -> PathBuf {
        self.tenants_dir.join(format!("{tenant}.json"))
    }

    /// The revision this node served last for `tenant`.
    pub fn current(&self, tenant: TenantId) -> Result<Option<Manifest>, RepoError> {
        let path = self.manifest_path(tenant);
        match std::fs::read(&path) {
            Ok(bytes) => parse_manifest(&bytes, &path.display().to_string()).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// The tenants with a served revision.
    pub fn tenants(&self) -> Vec<TenantId> {
        let mut out: Vec<TenantId> = std::fs::read_dir(&self.tenants_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json")?.parse().ok())
            .collect();
        out.sort_unstable();
        out
    }

    /// Records that `m` is now served for `tenant`, then drops components
    /// no served revision names any more.
    pub fn set_current(&self, tenant: TenantId, m: &Manifest) -> Result<(), RepoError> {
        write_atomic(&self.manifest_path(tenant), &m.to_json())?;
        let manifests: Vec<Manifest> = self
            .tenants()
            .into_iter()
            .filter_map(|t| self.current(t).ok().flatten())
            .collect();
        let keep: BTreeSet<&str> = manifests
            .iter()
            .flat_map(|m| m.apps.values().map(|a| a.sha256.as_str()))
            .collect();
        let removed = self.blobs.retain(&keep);
        if removed > 0 {
            tracing::debug!(removed, "dropped components no revision serves");
        }
        Ok(())
    }

    /// Forgets `tenant` (its revision is no longer served).
    pub fn remove(&self, tenant: TenantId) -> Result<(), RepoError> {
        let path = self.manifest_path(tenant);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&path)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_proto::{AppEntry, MANIFEST_VERSION};

    fn manifest(revision: u64, apps: &[(&str, &str)]) -> Manifest {
        Manifest {
            version: MANIFEST_VERSION,
            revision,
            parent: None,
            created_at_ms: 0,
            author: "a".into(),
            message: "m".into(),
            apps: apps
                .iter()
                .map(|(c, sha)| {
                    (
                        c.to_string(),
                        AppEntry {
                            sha256: sha.to_string(),
                            size: 1,
                            deployed_at_ms: 0,
                            deployed_by: String::new(),
                            limits: Default::default(),
                        },
                    )
                })
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn keeps_what_is_served_and_drops_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let a = store.blobs().put(b"a").unwrap();
        let b = store.blobs().put(b"b").unwrap();
        store
            .set_current(0, &manifest(1, &[("/a", &a), ("/b", &b)]))
            .unwrap();
        assert!(store.blobs().has(&a) && store.blobs().has(&b));
        store.set_current(0, &manifest(2, &[("/a", &a)])).unwrap();
        assert!(store.blobs().has(&a) && !store.blobs().has(&b));
        // Another tenant's blobs are kept while it serves them.
        let c = store.blobs().put(b"c").unwrap();
        store.set_current(7, &manifest(1, &[("/c", &c)])).unwrap();
        store.set_current(0, &manifest(3, &[])).unwrap();
        assert!(store.blobs().has(&c) && !store.blobs().has(&a));
        assert_eq!(store.tenants(), [0, 7]);
        let reopened = LocalStore::open(dir.path()).unwrap();
        assert_eq!(reopened.current(7).unwrap().unwrap().revision, 1);
        reopened.remove(7).unwrap();
        assert_eq!(reopened.current(7).unwrap(), None);
    }
}
