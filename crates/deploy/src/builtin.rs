//! The builtin repository: per tenant, a directory of content-addressed
//! blobs and numbered revision manifests, with `HEAD` naming the current
//! revision.
//!
//! ```text
//! <root>/<tenant>/blobs/<sha256>          the components, named by their hash
//! <root>/<tenant>/revisions/<n>.json      manifest of revision n
//! <root>/<tenant>/HEAD                    "n\n": the current revision
//! ```
//!
//! Every file is written under a temporary name, synced, and renamed into
//! place, and `HEAD` moves last: a process killed at any point leaves the
//! previous revision current or the new one, never a mix. A manifest
//! written but not yet named by `HEAD` is ignored and replaced by the next
//! commit. One process owns a repository (the manager); commits within it
//! are serialized.

use crate::blobs::BlobDir;
use crate::{io, write_atomic, Apps, CommitInfo, Committed, RepoError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use wharf_proto::{Manifest, TenantId};

/// Every tenant's builtin repository under one root (the manager's
/// `<data_dir>/repository`).
pub struct BuiltinStore {
    root: PathBuf,
    open: Mutex<BTreeMap<TenantId, Arc<BuiltinRepo>>>,
}

impl BuiltinStore {
    pub fn new(root: &Path) -> BuiltinStore {
        BuiltinStore {
            root: root.to_path_buf(),
            open: Mutex::new(BTreeMap::new()),
        }
    }

    /// The repository of `tenant`, created on first use.
    pub fn tenant(&self, tenant: TenantId) -> Result<Arc<BuiltinRepo>, RepoError> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = open.get(&tenant) {
            return Ok(r.clone());
        }
        let repo = Arc::new(BuiltinRepo::open(&self.root.join(tenant.to_string()))?);
        open.insert(tenant, repo.clone());
        Ok(repo)
    }
}

pub struct BuiltinRepo {
    root: PathBuf,
    blobs: BlobDir,
    commit_lock: Mutex<()>,
}

impl BuiltinRepo {
    /// Opens (creating if needed) the repository at `root`.
    pub fn open(root: &Path) -> Result<BuiltinRepo, RepoError> {
        let revisions = root.join("revisions");
        std::fs::create_dir_all(&revisions).map_err(io(&revisions))?;
        Ok(BuiltinRepo {
            blobs: BlobDir::open(&root.join("blobs"))?,
            root: root.to_path_buf(),
            commit_lock: Mutex::new(()),
        })
    }

    fn manifest_path(&self, revision: u64) -> PathBuf {
        self.root.join("revisions").join(format!("{revision}.json"))
    }

    /// Stores a component; returns its hash. Storing the same bytes again
    /// is a no-op.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<String, RepoError> {
        self.blobs.put(bytes)
    }

    /// A component by hash, checked against it.
    pub fn blob(&self, sha256: &str) -> Result<Vec<u8>, RepoError> {
        self.blobs.get(sha256)
    }

    pub fn has_blob(&self, sha256: &str) -> bool {
        self.blobs.has(sha256)
    }

    /// The current revision number, 0 when nothing was ever committed.
    pub fn head_revision(&self) -> Result<u64, RepoError> {
        let path = self.root.join("HEAD");
        match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse().map_err(|_| RepoError::Corrupt {
                path,
                message: format!("{:?} is not a revision number", text.trim()),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// The manifest of `revision` (which must be at or below `HEAD`).
    pub fn manifest(&self, revision: u64) -> Result<Manifest, RepoError> {
        if revision == 0 || revision > self.head_revision()? {
            return Err(RepoError::NoSuchRevision(revision));
        }
        let path = self.manifest_path(revision);
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        Manifest::from_json(&bytes).map_err(|e| RepoError::Corrupt {
            path,
            message: e.to_string(),
        })
    }

    /// The current manifest, if any revision was committed.
    pub fn head(&self) -> Result<Option<Manifest>, RepoError> {
        match self.head_revision()? {
            0 => Ok(None),
            n => self.manifest(n).map(Some),
        }
    }

    /// Every revision, newest first.
    pub fn history(&self) -> Result<Vec<Manifest>, RepoError> {
        (1..=self.head_revision()?)
            .rev()
            .map(|n| self.manifest(n))
            .collect()
    }

    /// Makes the next revision from what `edit` makes of the current
    /// applications and moves `HEAD` to it; `edit` runs under the commit
    /// lock, so concurrent commits never lose each other's changes. Every
    /// blob must be stored first. An edit that changes nothing commits
    /// nothing.
    pub fn commit(
        &self,
        info: CommitInfo,
        edit: impl FnOnce(&Apps) -> Result<Apps, RepoError>,
    ) -> Result<Committed, RepoError> {
        let _serial = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.head()?;
        let apps = edit(current.as_ref().map_or(&Apps::new(), |m| &m.apps))?;
        if let Some(m) = current.filter(|m| m.apps == apps) {
            return Ok(Committed {
                manifest: m,
                changed: false,
            });
        }
        for (context, app) in &apps {
            if !self.has_blob(&app.sha256) {
                return Err(RepoError::MissingBlob {
                    context: context.clone(),
                    sha256: app.sha256.clone(),
                });
            }
        }
        let parent = self.head_revision()?;
        let manifest = crate::next_manifest(parent, info, apps);
        write_atomic(&self.manifest_path(manifest.revision), &manifest.to_json())?;
        write_atomic(
            &self.root.join("HEAD"),
            format!("{}\n", manifest.revision).as_bytes(),
        )?;
        Ok(Committed {
            manifest,
            changed: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sha256_hex;
    use wharf_proto::AppEntry;

    fn info(message: &str) -> CommitInfo {
        CommitInfo {
            author: "admin".into(),
            message: message.into(),
            created_at_ms: 1,
        }
    }

    fn entry(repo: &BuiltinRepo, bytes: &[u8]) -> AppEntry {
        AppEntry {
            sha256: repo.put_blob(bytes).unwrap(),
            size: bytes.len() as u64,
            deployed_at_ms: 1,
            deployed_by: "admin".into(),
            limits: Default::default(),
        }
    }

    fn commit(repo: &BuiltinRepo, apps: Apps, message: &str) -> Result<Manifest, RepoError> {
        repo.commit(info(message), |_| Ok(apps)).map(|c| c.manifest)
    }

    #[test]
    fn commits_history_and_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let repo = BuiltinRepo::open(dir.path()).unwrap();
        assert_eq!(repo.head().unwrap(), None);
        let a = entry(&repo, b"component a");
        let r1 = commit(
            &repo,
            BTreeMap::from([("/a".into(), a.clone())]),
            "deploy /a",
        )
        .unwrap();
        assert_eq!((r1.revision, r1.parent), (1, None));
        let b = entry(&repo, b"component b");
        let r2 = commit(
            &repo,
            BTreeMap::from([("/a".into(), a.clone()), ("/b".into(), b.clone())]),
            "deploy /b",
        )
        .unwrap();
        // The same applications again: nothing to commit.
        let same = repo.commit(info("again"), |apps| Ok(apps.clone())).unwrap();
        assert!(!same.changed);
        assert_eq!(same.manifest, r2);
        assert_eq!((r2.revision, r2.parent), (2, Some(1)));
        // Reopened, it is all there.
        let repo = BuiltinRepo::open(dir.path()).unwrap();
        assert_eq!(repo.head().unwrap().unwrap(), r2);
        let h: Vec<u64> = repo.history().unwrap().iter().map(|m| m.revision).collect();
        assert_eq!(h, [2, 1]);
        assert_eq!(repo.blob(&b.sha256).unwrap(), b"component b");
        assert!(matches!(
            repo.manifest(3),
            Err(RepoError::NoSuchRevision(3))
        ));
    }

    #[test]
    fn a_commit_needs_its_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let repo = BuiltinRepo::open(dir.path()).unwrap();
        let ghost = AppEntry {
            sha256: sha256_hex(b"never stored"),
            size: 12,
            deployed_at_ms: 1,
            deployed_by: "admin".into(),
            limits: Default::default(),
        };
        let e = commit(&repo, BTreeMap::from([("/g".into(), ghost)]), "x").unwrap_err();
        assert!(matches!(e, RepoError::MissingBlob { .. }), "{e}");
        assert_eq!(repo.head_revision().unwrap(), 0);
        assert!(matches!(
            repo.blob("../../etc/passwd"),
            Err(RepoError::BadHash(_))
        ));
    }

    #[test]
    fn a_commit_cut_short_leaves_the_previous_revision() {
        let dir = tempfile::tempdir().unwrap();
        let repo = BuiltinRepo::open(dir.path()).unwrap();
        let a = entry(&repo, b"a");
        let r1 = commit(&repo, BTreeMap::from([("/a".into(), a.clone())]), "one").unwrap();
        // A process killed after writing revision 2's manifest (and a
        // half-written temporary HEAD) but before moving HEAD.
        std::fs::write(
            dir.path().join("revisions/2.json"),
            b"{\"version\": 1, \"half",
        )
        .unwrap();
        std::fs::write(dir.path().join(".HEAD.tmp-999"), b"2").unwrap();
        let repo = BuiltinRepo::open(dir.path()).unwrap();
        assert_eq!(repo.head().unwrap().unwrap(), r1);
        assert_eq!(repo.history().unwrap().len(), 1);
        // The next commit takes number 2 and replaces the leftover.
        let mut a2 = a;
        a2.deployed_at_ms = 2;
        let r2 = commit(&repo, BTreeMap::from([("/a".into(), a2)]), "two").unwrap();
        assert_eq!(r2.revision, 2);
        assert_eq!(repo.manifest(2).unwrap(), r2);
    }

    #[test]
    fn a_damaged_blob_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let repo = BuiltinRepo::open(dir.path()).unwrap();
        let sha = repo.put_blob(b"original").unwrap();
        std::fs::write(dir.path().join("blobs").join(&sha), b"tampered").unwrap();
        assert!(matches!(repo.blob(&sha), Err(RepoError::Corrupt { .. })));
    }

    proptest::proptest! {
        /// Any sequence of commits gives consecutive revisions whose
        /// manifests read back as committed.
        #[test]
        fn revisions_read_back(sets in proptest::collection::vec(proptest::collection::btree_set(0u8..6, 0..4), 1..6)) {
            let dir = tempfile::tempdir().unwrap();
            let repo = BuiltinRepo::open(dir.path()).unwrap();
            let mut made = vec![];
            for set in &sets {
                let apps: BTreeMap<String, AppEntry> = set
                    .iter()
                    .map(|i| (format!("/app{i}"), entry(&repo, &[*i; 3])))
                    .collect();
                let c = repo.commit(info("c"), |_| Ok(apps.clone())).unwrap();
                // Only a change makes a revision.
                let expect_changed = made.last().is_none_or(|m: &Manifest| m.apps != apps);
                proptest::prop_assert_eq!(c.changed, expect_changed);
                if c.changed {
                    made.push(c.manifest);
                }
            }
            for m in &made {
                proptest::prop_assert_eq!(&repo.manifest(m.revision).unwrap(), m);
            }
            proptest::prop_assert_eq!(repo.head_revision().unwrap(), made.len() as u64);
        }
    }
}
