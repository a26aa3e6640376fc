//! The builtin repository: a directory of content-addressed blobs and
//! numbered revision manifests, with `HEAD` naming the current revision.
//!
//! ```text
//! <root>/blobs/<sha256>          the components, named by their hash
//! <root>/revisions/<n>.json      manifest of revision n
//! <root>/HEAD                    "n\n": the current revision
//! ```
//!
//! Every file is written under a temporary name, synced, and renamed into
//! place, and `HEAD` moves last: a process killed at any point leaves the
//! previous revision current or the new one, never a mix. A manifest
//! written but not yet named by `HEAD` is ignored and replaced by the next
//! commit. One process owns a repository (the manager); commits within it
//! are serialized.

use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use wharf_proto::{is_sha256_hex, AppEntry, Manifest, MANIFEST_VERSION};

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("revision {0} does not exist")]
    NoSuchRevision(u64),
    #[error("application {context:?} names blob {sha256}, which the repository does not have")]
    MissingBlob { context: String, sha256: String },
    #[error("{0:?} is not a SHA-256")]
    BadHash(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RepoError + '_ {
    move |source| RepoError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What a commit records besides the applications.
#[derive(Debug, Clone)]
pub struct CommitInfo {
    pub author: String,
    pub message: String,
    pub created_at_ms: u64,
}

pub struct BuiltinRepo {
    root: PathBuf,
    commit_lock: Mutex<()>,
}

impl BuiltinRepo {
    /// Opens (creating if needed) the repository at `root`.
    pub fn open(root: &Path) -> Result<BuiltinRepo, RepoError> {
        for d in [root.join("blobs"), root.join("revisions")] {
            std::fs::create_dir_all(&d).map_err(io(&d))?;
        }
        Ok(BuiltinRepo {
            root: root.to_path_buf(),
            commit_lock: Mutex::new(()),
        })
    }

    fn blob_path(&self, sha256: &str) -> Result<PathBuf, RepoError> {
        if !is_sha256_hex(sha256) {
            return Err(RepoError::BadHash(sha256.to_string()));
        }
        Ok(self.root.join("blobs").join(sha256))
    }

    fn manifest_path(&self, revision: u64) -> PathBuf {
        self.root.join("revisions").join(format!("{revision}.json"))
    }

    /// Stores a component; returns its hash. Storing the same bytes again
    /// is a no-op.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<String, RepoError> {
        let sha = sha256_hex(bytes);
        let path = self.blob_path(&sha)?;
        if !path.exists() {
            write_atomic(&path, bytes)?;
        }
        Ok(sha)
    }

    /// A component by hash, checked against it.
    pub fn blob(&self, sha256: &str) -> Result<Vec<u8>, RepoError> {
        let path = self.blob_path(sha256)?;
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        if sha256_hex(&bytes) != sha256 {
            return Err(RepoError::Corrupt {
                path,
                message: "content does not match its hash".into(),
            });
        }
        Ok(bytes)
    }

    pub fn has_blob(&self, sha256: &str) -> bool {
        self.blob_path(sha256).is_ok_and(|p| p.exists())
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

    /// Makes `apps` the next revision and moves `HEAD` to it. Every blob
    /// must be stored first.
    pub fn commit(
        &self,
        apps: std::collections::BTreeMap<String, AppEntry>,
        info: CommitInfo,
    ) -> Result<Manifest, RepoError> {
        let _serial = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
        for (context, app) in &apps {
            if !self.has_blob(&app.sha256) {
                return Err(RepoError::MissingBlob {
                    context: context.clone(),
                    sha256: app.sha256.clone(),
                });
            }
        }
        let parent = self.head_revision()?;
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            revision: parent + 1,
            parent: (parent > 0).then_some(parent),
            created_at_ms: info.created_at_ms,
            author: info.author,
            message: info.message,
            apps,
        };
        write_atomic(&self.manifest_path(manifest.revision), &manifest.to_json())?;
        write_atomic(
            &self.root.join("HEAD"),
            format!("{}\n", manifest.revision).as_bytes(),
        )?;
        Ok(manifest)
    }
}

/// Writes `bytes` to `path` so that `path` holds either its old content or
/// all of the new: a temporary file, synced, renamed, the directory synced.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RepoError> {
    let dir = path.parent().expect("repository paths have a parent");
    let name = path
        .file_name()
        .expect("repository paths have a name")
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

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
            limits: Default::default(),
        }
    }

    #[test]
    fn commits_history_and_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let repo = BuiltinRepo::open(dir.path()).unwrap();
        assert_eq!(repo.head().unwrap(), None);
        let a = entry(&repo, b"component a");
        let r1 = repo
            .commit(
                BTreeMap::from([("/a".into(), a.clone())]),
                info("deploy /a"),
            )
            .unwrap();
        assert_eq!((r1.revision, r1.parent), (1, None));
        let b = entry(&repo, b"component b");
        let r2 = repo
            .commit(
                BTreeMap::from([("/a".into(), a.clone()), ("/b".into(), b.clone())]),
                info("deploy /b"),
            )
            .unwrap();
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
            limits: Default::default(),
        };
        let e = repo
            .commit(BTreeMap::from([("/g".into(), ghost)]), info("x"))
            .unwrap_err();
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
        let r1 = repo
            .commit(BTreeMap::from([("/a".into(), a.clone())]), info("one"))
            .unwrap();
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
        let r2 = repo
            .commit(BTreeMap::from([("/a".into(), a)]), info("two"))
            .unwrap();
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
                made.push(repo.commit(apps, info("c")).unwrap());
            }
            for m in &made {
                proptest::prop_assert_eq!(&repo.manifest(m.revision).unwrap(), m);
            }
            proptest::prop_assert_eq!(repo.head_revision().unwrap(), sets.len() as u64);
        }
    }
}
