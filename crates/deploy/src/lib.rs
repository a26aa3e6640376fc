//! Wharf's deployment synchronizer: where revisions of applications are
//! kept, and how a node reads them.
//!
//! A revision is a [`Manifest`] (context path → component by SHA-256, with
//! limits) plus the components it names, per tenant. The management node
//! commits revisions ([`Repository`]); every node checks them out
//! ([`Source`]) into its own [`local::LocalStore`] and serves them. Three
//! backends keep them:
//!
//! - [`builtin`]: the manager's data directory, served to workers over its
//!   HTTPS listener ([`remote`]), authorised by the cluster secret;
//! - [`git`]: any git repository, one commit per revision;
//! - [`svn`]: a Subversion repository through the `svn` client, as in the seed.
//!
//! git and svn hold the same tree per tenant ([`tree`]): `manifest.json`
//! and `webapps/<name>.wasm`, Tomcat's names.

pub mod blobs;
pub mod builtin;
pub mod git;
mod git_http;
pub mod local;
pub mod remote;
mod repo;
pub mod svn;
pub mod tree;

pub use builtin::{BuiltinRepo, BuiltinStore};
pub use local::LocalStore;
pub use repo::{Fetched, Hint, ManagerEndpoint, Repository, Source};

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use wharf_proto::{AppEntry, Manifest, MANIFEST_VERSION};

/// The applications of a revision, by context path.
pub type Apps = BTreeMap<String, AppEntry>;

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
    /// What a commit was asked to change is not there (e.g. undeploying a
    /// context where nothing is deployed).
    #[error("{0}")]
    NotFound(String),
    /// The repository cannot do what was asked, as configured.
    #[error("{0}")]
    Unsupported(String),
    /// The change would break a rule (e.g. a tenant's application limit).
    #[error("{0}")]
    Refused(String),
    /// The repository (git, svn, the manager) failed or could not be reached.
    #[error("{0}")]
    Backend(String),
    /// What came back does not match what was announced or named.
    #[error("{0}")]
    Integrity(String),
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RepoError + '_ {
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

/// The result of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The current revision after the commit.
    pub manifest: Manifest,
    /// False when the edit changed nothing and no revision was made.
    pub changed: bool,
}

/// The manifest that follows revision `parent` (0: none) with `apps`.
pub(crate) fn next_manifest(parent: u64, info: CommitInfo, apps: Apps) -> Manifest {
    Manifest {
        version: MANIFEST_VERSION,
        revision: parent + 1,
        parent: (parent > 0).then_some(parent),
        created_at_ms: info.created_at_ms,
        author: info.author,
        message: info.message,
        apps,
    }
}

/// Revision `revision` of a history.
pub(crate) fn find_revision(history: Vec<Manifest>, revision: u64) -> Result<Manifest, RepoError> {
    history
        .into_iter()
        .find(|m| m.revision == revision)
        .ok_or(RepoError::NoSuchRevision(revision))
}

/// Checks `bytes` against the SHA-256 it is named by.
pub(crate) fn check_blob(sha256: &str, bytes: &[u8], what: &str) -> Result<(), RepoError> {
    let got = sha256_hex(bytes);
    if got != sha256 {
        return Err(RepoError::Integrity(format!(
            "{what}: content has SHA-256 {got}, expected {sha256}"
        )));
    }
    Ok(())
}

/// Writes `bytes` to `path` so that `path` holds either its old content or
/// all of the new: a temporary file, synced, renamed, the directory synced.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RepoError> {
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
