//! The backends behind two faces: [`Repository`], what the manager commits
//! to and reads history from, and [`Source`], what a node checks out from.
//! git and svn are blocking (libgit2, the `svn` process) and run on
//! blocking threads; the builtin source is an HTTPS client.

use crate::builtin::BuiltinStore;
use crate::git::GitRepo;
use crate::remote::RemoteBuiltin;
use crate::svn::SvnRepo;
use crate::{Apps, CommitInfo, Committed, RepoError};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use wharf_config::{RepositoryType, SyncConfig};
use wharf_proto::gossip::RevisionRef;
use wharf_proto::{Manifest, TenantId};

pub use crate::remote::ManagerEndpoint;

/// A revision checked out: its manifest and the components the caller
/// did not have yet (by SHA-256, each checked against it).
#[derive(Debug, Clone)]
pub struct Fetched {
    pub manifest: Manifest,
    pub blobs: BTreeMap<String, Vec<u8>>,
}

/// Where the manager commits revisions.
#[derive(Clone)]
pub enum Repository {
    Builtin(Arc<BuiltinStore>),
    Git(Arc<GitRepo>),
    Svn(Arc<SvnRepo>),
}

/// Opens the git or svn backend `cfg` names, keeping its state in `dir`.
fn open_vcs(cfg: &SyncConfig, dir: &Path) -> Result<Option<Repository>, RepoError> {
    let url = || {
        cfg.url
            .clone()
            .ok_or_else(|| RepoError::Unsupported("the repository has no url".into()))
    };
    Ok(match cfg.repository_type {
        RepositoryType::Builtin => None,
        RepositoryType::Git => {
            let creds = cfg
                .user
                .clone()
                .map(|u| (u, cfg.password.clone().unwrap_or_default()));
            Some(Repository::Git(Arc::new(GitRepo::open(
                dir,
                &url()?,
                &cfg.branch,
                creds,
                cfg.url_append_tenant_id,
            )?)))
        }
        RepositoryType::Svn => Some(Repository::Svn(Arc::new(SvnRepo::open(
            dir,
            &url()?,
            cfg.user.clone(),
            cfg.password.clone(),
            cfg.url_append_tenant_id,
        )?))),
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RepoError> + Send + 'static,
) -> Result<T, RepoError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RepoError::Backend(format!("repository task failed: {e}")))?
}

impl Repository {
    /// The manager's repository: `<data_dir>/repository` for builtin, the
    /// configured URL (with local state under `deployment_dir`) otherwise.
    pub fn open(
        cfg: &SyncConfig,
        data_dir: &Path,
        deployment_dir: &Path,
    ) -> Result<Repository, RepoError> {
        match open_vcs(cfg, deployment_dir)? {
            Some(r) => Ok(r),
            None => Ok(Repository::Builtin(Arc::new(BuiltinStore::new(
                &data_dir.join("repository"),
            )))),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Repository::Builtin(_) => "builtin",
            Repository::Git(_) => "git",
            Repository::Svn(_) => "svn",
        }
    }

    pub async fn put_blob(&self, tenant: TenantId, bytes: Vec<u8>) -> Result<String, RepoError> {
        let me = self.clone();
        blocking(move || match &me {
            Repository::Builtin(s) => s.tenant(tenant)?.put_blob(&bytes),
            Repository::Git(g) => g.put_blob(&bytes),
            Repository::Svn(s) => s.put_blob(&bytes),
        })
        .await
    }

    pub async fn blob(&self, tenant: TenantId, sha256: &str) -> Result<Vec<u8>, RepoError> {
        let (me, sha) = (self.clone(), sha256.to_string());
        blocking(move || me.blob_blocking(tenant, &sha)).await
    }

    /// [`Repository::blob`] for a caller already on a blocking thread.
    pub fn blob_blocking(&self, tenant: TenantId, sha256: &str) -> Result<Vec<u8>, RepoError> {
        match self {
            Repository::Builtin(s) => s.tenant(tenant)?.blob(sha256),
            Repository::Git(g) => g.blob(tenant, sha256),
            Repository::Svn(s) => s.blob(tenant, sha256),
        }
    }

    pub async fn head(&self, tenant: TenantId) -> Result<Option<Manifest>, RepoError> {
        let me = self.clone();
        blocking(move || match &me {
            Repository::Builtin(s) => s.tenant(tenant)?.head(),
            Repository::Git(g) => g.head(tenant),
            Repository::Svn(s) => s.head(tenant),
        })
        .await
    }

    pub async fn manifest(&self, tenant: TenantId, revision: u64) -> Result<Manifest, RepoError> {
        let me = self.clone();
        blocking(move || match &me {
            Repository::Builtin(s) => s.tenant(tenant)?.manifest(revision),
            Repository::Git(g) => g.manifest(tenant, revision),
            Repository::Svn(s) => s.manifest(tenant, revision),
        })
        .await
    }

    /// Every revision, newest first.
    pub async fn history(&self, tenant: TenantId) -> Result<Vec<Manifest>, RepoError> {
        let me = self.clone();
        blocking(move || match &me {
            Repository::Builtin(s) => s.tenant(tenant)?.history(),
            Repository::Git(g) => g.history(tenant),
            Repository::Svn(s) => s.history(tenant),
        })
        .await
    }

    /// Commits what `edit` makes of the tenant's current applications as
    /// its next revision (nothing, when that changes nothing). `edit` may
    /// run more than once when another commit gets there first.
    pub async fn commit(
        &self,
        tenant: TenantId,
        info: CommitInfo,
        edit: impl Fn(&Apps) -> Result<Apps, RepoError> + Send + 'static,
    ) -> Result<Committed, RepoError> {
        let me = self.clone();
        blocking(move || match &me {
            Repository::Builtin(s) => s.tenant(tenant)?.commit(info, edit),
            Repository::Git(g) => g.commit(tenant, info, edit),
            Repository::Svn(s) => s.commit(tenant, info, &edit),
        })
        .await
    }
}

/// What a node checks revisions out from.
pub enum Source {
    /// The manager's builtin repository, over its HTTPS listener.
    Builtin(RemoteBuiltin),
    Git(Arc<GitRepo>),
    Svn(Arc<SvnRepo>),
}

/// What the cluster says about where to check out from.
#[derive(Debug, Clone, Default)]
pub struct Hint {
    /// The revision the manager announced, if any.
    pub announced: Option<RevisionRef>,
    /// The manager serving the builtin repository, if one is known.
    pub manager: Option<ManagerEndpoint>,
}

impl Source {
    /// A worker's source as configured; `member_token` authorises it at the
    /// manager's builtin repository.
    pub fn open(
        cfg: &SyncConfig,
        deployment_dir: &Path,
        member_token: Option<String>,
    ) -> Result<Source, RepoError> {
        Ok(match open_vcs(cfg, deployment_dir)? {
            Some(Repository::Git(g)) => Source::Git(g),
            Some(Repository::Svn(s)) => Source::Svn(s),
            _ => Source::Builtin(RemoteBuiltin::new(
                member_token,
                std::time::Duration::from_secs(60),
            )),
        })
    }

    /// The tenant's current revision (for builtin: the announced one, or
    /// the manager's current one) and the components `have` lacks.
    /// `Ok(None)`: the repository has nothing for this tenant (or, for
    /// builtin, no manager is known yet).
    pub async fn checkout(
        &self,
        tenant: TenantId,
        hint: &Hint,
        have: impl Fn(&str) -> bool + Send + 'static,
    ) -> Result<Option<Fetched>, RepoError> {
        match self {
            Source::Builtin(remote) => {
                let Some(ep) = &hint.manager else {
                    return Ok(None);
                };
                let Some(manifest) = remote.manifest(ep, tenant, hint.announced.as_ref()).await?
                else {
                    return Ok(None);
                };
                let mut blobs = BTreeMap::new();
                for app in manifest.apps.values() {
                    if have(&app.sha256) || blobs.contains_key(&app.sha256) {
                        continue;
                    }
                    let bytes = remote.blob(ep, tenant, &app.sha256).await?;
                    blobs.insert(app.sha256.clone(), bytes);
                }
                Ok(Some(Fetched { manifest, blobs }))
            }
            Source::Git(g) => {
                let g = g.clone();
                blocking(move || g.checkout(tenant, &have)).await
            }
            Source::Svn(s) => {
                let s = s.clone();
                blocking(move || s.checkout(tenant, &have)).await
            }
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Source::Builtin(_) => "builtin",
            Source::Git(_) => "git",
            Source::Svn(_) => "svn",
        }
    }
}
