//! The git backend: one commit per revision on one branch of any git
//! repository, through libgit2 (git2, vendored).
//!
//! Each node keeps a bare clone in its data directory and reads trees
//! straight from its object database; nothing is ever checked out into a
//! working tree. The manager builds each commit on the remote's tip and
//! pushes it; a push that loses a race is retried on the new tip.

use crate::blobs::BlobDir;
use crate::tree::{self, MANIFEST_FILE, WEBAPPS_DIR};
use crate::{check_blob, next_manifest, Apps, CommitInfo, Committed, Fetched, RepoError};
use git2::{Oid, Repository as Git};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use wharf_proto::context::file_name_for_context;
use wharf_proto::{Manifest, TenantId};

/// How often a commit is rebuilt on a newer tip before giving up.
const PUSH_ATTEMPTS: usize = 5;
const FILE_MODE: i32 = 0o100644;
const DIR_MODE: i32 = 0o040000;

pub struct GitRepo {
    url: String,
    branch: String,
    creds: Option<(String, String)>,
    append_tenant_id: bool,
    local: Mutex<Git>,
    blobs: BlobDir,
}

fn backend(what: &str) -> impl FnOnce(git2::Error) -> RepoError + '_ {
    move |e| RepoError::Backend(format!("git: {what}: {}", e.message()))
}

impl GitRepo {
    /// Opens (creating if needed) this node's bare clone under `dir`.
    pub fn open(
        dir: &Path,
        url: &str,
        branch: &str,
        creds: Option<(String, String)>,
        append_tenant_id: bool,
    ) -> Result<GitRepo, RepoError> {
        check_url(url)?;
        if url.starts_with("http://") || url.starts_with("https://") {
            crate::git_http::register();
            if let Some((user, password)) = &creds {
                crate::git_http::set_credentials(url, user, password);
            }
        }
        let bare = dir.join("git");
        let local = match Git::open_bare(&bare) {
            Ok(r) => r,
            Err(_) => Git::init_bare(&bare).map_err(backend("creating the local clone"))?,
        };
        Ok(GitRepo {
            url: url.to_string(),
            branch: branch.to_string(),
            creds,
            append_tenant_id,
            local: Mutex::new(local),
            blobs: BlobDir::open(&dir.join("git-blobs"))?,
        })
    }

    fn callbacks(&self) -> git2::RemoteCallbacks<'_> {
        let mut cb = git2::RemoteCallbacks::new();
        if let Some((user, password)) = &self.creds {
            let mut tried = false;
            cb.credentials(move |_, _, _| {
                if tried {
                    return Err(git2::Error::from_str(&format!(
                        "the repository refused user {user:?} and its password"
                    )));
                }
                tried = true;
                git2::Cred::userpass_plaintext(user, password)
            });
        }
        cb
    }

    fn tracking_ref(&self) -> String {
        format!("refs/remotes/origin/{}", self.branch)
    }

    /// Fetches the branch; its tip, or `None` while the repository has no
    /// such branch (nothing was ever committed).
    fn fetch(&self, git: &Git) -> Result<Option<Oid>, RepoError> {
        let mut remote = git
            .remote_anonymous(&self.url)
            .map_err(backend("opening the remote"))?;
        let mut opts = git2::FetchOptions::new();
        opts.remote_callbacks(self.callbacks());
        let refspec = format!("+refs/heads/{b}:refs/remotes/origin/{b}", b = self.branch);
        remote
            .fetch(&[&refspec], Some(&mut opts), None)
            .map_err(|e| {
                RepoError::Backend(format!("git: fetching from {}: {}", self.url, e.message()))
            })?;
        match git.find_reference(&self.tracking_ref()) {
            Ok(r) => Ok(r.target()),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(e) => Err(backend("reading the branch")(e)),
        }
    }

    fn prefix(&self, tenant: TenantId) -> Result<String, RepoError> {
        tree::tenant_prefix(tenant, self.append_tenant_id)
    }

    fn file_at(git: &Git, commit: Oid, path: &str) -> Result<Option<Vec<u8>>, RepoError> {
        let commit = git
            .find_commit(commit)
            .map_err(backend("reading a commit"))?;
        let root = commit.tree().map_err(backend("reading a tree"))?;
        match root.get_path(Path::new(path)) {
            Ok(entry) => {
                let blob = entry
                    .to_object(git)
                    .and_then(|o| o.peel_to_blob())
                    .map_err(backend("reading a file"))?;
                Ok(Some(blob.content().to_vec()))
            }
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(e) => Err(backend("reading a tree")(e)),
        }
    }

    fn manifest_at(git: &Git, commit: Oid, prefix: &str) -> Result<Option<Manifest>, RepoError> {
        let path = format!("{prefix}{MANIFEST_FILE}");
        match Self::file_at(git, commit, &path)? {
            Some(bytes) => tree::parse_manifest(&bytes, &format!("{commit}:{path}")).map(Some),
            None => Ok(None),
        }
    }

    /// The tenant's current revision.
    pub fn head(&self, tenant: TenantId) -> Result<Option<Manifest>, RepoError> {
        let prefix = self.prefix(tenant)?;
        let git = self.local.lock().unwrap_or_else(|p| p.into_inner());
        match self.fetch(&git)? {
            Some(tip) => Self::manifest_at(&git, tip, &prefix),
            None => Ok(None),
        }
    }

    /// Every revision of the tenant, newest first, with the commit holding it.
    fn revisions(&self, git: &Git, prefix: &str) -> Result<Vec<(Oid, Manifest)>, RepoError> {
        let Some(tip) = self.fetch(git)? else {
            return Ok(vec![]);
        };
        let mut walk = git.revwalk().map_err(backend("walking history"))?;
        walk.push(tip).map_err(backend("walking history"))?;
        walk.set_sorting(git2::Sort::TOPOLOGICAL)
            .map_err(backend("walking history"))?;
        let mut seen: BTreeMap<u64, (Oid, Manifest)> = BTreeMap::new();
        for oid in walk {
            let oid = oid.map_err(backend("walking history"))?;
            if let Some(m) = Self::manifest_at(git, oid, prefix)? {
                seen.entry(m.revision).or_insert((oid, m));
            }
        }
        Ok(seen.into_values().rev().collect())
    }

    pub fn history(&self, tenant: TenantId) -> Result<Vec<Manifest>, RepoError> {
        let prefix = self.prefix(tenant)?;
        let git = self.local.lock().unwrap_or_else(|p| p.into_inner());
        Ok(self
            .revisions(&git, &prefix)?
            .into_iter()
            .map(|(_, m)| m)
            .collect())
    }

    pub fn manifest(&self, tenant: TenantId, revision: u64) -> Result<Manifest, RepoError> {
        crate::find_revision(self.history(tenant)?, revision)
    }

    pub fn put_blob(&self, bytes: &[u8]) -> Result<String, RepoError> {
        self.blobs.put(bytes)
    }

    /// A component by hash: from this node's cache, else from the first
    /// revision in history that has it.
    pub fn blob(&self, tenant: TenantId, sha256: &str) -> Result<Vec<u8>, RepoError> {
        if self.blobs.has(sha256) {
            return self.blobs.get(sha256);
        }
        let prefix = self.prefix(tenant)?;
        let git = self.local.lock().unwrap_or_else(|p| p.into_inner());
        self.blob_from_history(&git, &prefix, sha256)
    }

    fn blob_from_history(
        &self,
        git: &Git,
        prefix: &str,
        sha256: &str,
    ) -> Result<Vec<u8>, RepoError> {
        for (oid, m) in self.revisions(git, prefix)? {
            if let Some((context, _)) = m.apps.iter().find(|(_, a)| a.sha256 == sha256) {
                let path = format!("{prefix}{}", tree::app_path(context));
                if let Some(bytes) = Self::file_at(git, oid, &path)? {
                    check_blob(sha256, &bytes, &format!("{oid}:{path}"))?;
                    self.blobs.put(&bytes)?;
                    return Ok(bytes);
                }
            }
        }
        Err(RepoError::NotFound(format!(
            "no revision in {} has component {sha256}",
            self.url
        )))
    }

    /// Commits what `edit` makes of the tenant's current applications as
    /// its next revision, and pushes it.
    pub fn commit(
        &self,
        tenant: TenantId,
        info: CommitInfo,
        edit: impl Fn(&Apps) -> Result<Apps, RepoError>,
    ) -> Result<Committed, RepoError> {
        let prefix = self.prefix(tenant)?;
        let git = self.local.lock().unwrap_or_else(|p| p.into_inner());
        for attempt in 1..=PUSH_ATTEMPTS {
            let base = self.fetch(&git)?;
            let current = match base {
                Some(tip) => Self::manifest_at(&git, tip, &prefix)?,
                None => None,
            };
            let apps = edit(current.as_ref().map_or(&Apps::new(), |m| &m.apps))?;
            if let Some(m) = current.as_ref().filter(|m| m.apps == apps) {
                return Ok(Committed {
                    manifest: m.clone(),
                    changed: false,
                });
            }
            let manifest = next_manifest(
                current.as_ref().map_or(0, |m| m.revision),
                info.clone(),
                apps,
            );
            let oid = self.write_commit(&git, base, &prefix, current.as_ref(), &manifest)?;
            if self.push(&git, base, oid)? {
                let _ = git.reference(&self.tracking_ref(), oid, true, "pushed");
                tracing::info!(tenant, revision = manifest.revision, commit = %oid, "committed to git");
                return Ok(Committed {
                    manifest,
                    changed: true,
                });
            }
            tracing::info!(
                attempt,
                "the branch moved while committing; building on the new tip"
            );
        }
        Err(RepoError::Backend(format!(
            "git: the branch {} kept moving; gave up after {PUSH_ATTEMPTS} attempts",
            self.branch
        )))
    }

    /// Writes the tree and commit of `m` on top of `base`; returns the commit.
    fn write_commit(
        &self,
        git: &Git,
        base: Option<Oid>,
        prefix: &str,
        old: Option<&Manifest>,
        m: &Manifest,
    ) -> Result<Oid, RepoError> {
        let b = backend("writing the commit");
        let base_commit = base
            .map(|o| git.find_commit(o))
            .transpose()
            .map_err(backend("reading the tip"))?;
        let base_root = base_commit
            .as_ref()
            .map(|c| c.tree())
            .transpose()
            .map_err(backend("reading the tip"))?;

        let mut webapps = git.treebuilder(None).map_err(backend("building a tree"))?;
        for (context, app) in &m.apps {
            // Unchanged since the tip (perhaps another manager's deploy):
            // the tip's file, as it is.
            let unchanged = old
                .and_then(|o| o.apps.get(context))
                .filter(|a| a.sha256 == app.sha256)
                .and_then(|_| {
                    let path = format!("{prefix}{}", tree::app_path(context));
                    base_root.as_ref()?.get_path(Path::new(&path)).ok()
                })
                .map(|e| e.id());
            let oid = match unchanged {
                Some(oid) => oid,
                None => {
                    let bytes = match self.blobs.get(&app.sha256) {
                        Ok(b) => b,
                        Err(_) => {
                            self.blob_from_history(git, prefix, &app.sha256)
                                .map_err(|_| RepoError::MissingBlob {
                                    context: context.clone(),
                                    sha256: app.sha256.clone(),
                                })?
                        }
                    };
                    git.blob(&bytes).map_err(backend("storing a component"))?
                }
            };
            webapps
                .insert(file_name_for_context(context), oid, FILE_MODE)
                .map_err(backend("building a tree"))?;
        }
        let webapps = webapps.write().map_err(backend("building a tree"))?;
        let manifest = git
            .blob(&m.to_json())
            .map_err(backend("storing the manifest"))?;

        // The tenant's directory: the old one's other files kept, the
        // manifest and webapps replaced.
        let tenant_name = prefix.trim_end_matches('/');
        let old_tenant_tree = match (&base_root, tenant_name.is_empty()) {
            (Some(root), true) => Some(root.clone()),
            (Some(root), false) => root
                .get_name(tenant_name)
                .filter(|e| e.kind() == Some(git2::ObjectType::Tree))
                .map(|e| git.find_tree(e.id()))
                .transpose()
                .map_err(backend("reading the tip"))?,
            (None, _) => None,
        };
        let mut tb = git
            .treebuilder(old_tenant_tree.as_ref())
            .map_err(backend("building a tree"))?;
        tb.insert(MANIFEST_FILE, manifest, FILE_MODE)
            .map_err(backend("building a tree"))?;
        if m.apps.is_empty() {
            if tb.get(WEBAPPS_DIR).ok().flatten().is_some() {
                tb.remove(WEBAPPS_DIR).map_err(backend("building a tree"))?;
            }
        } else {
            tb.insert(WEBAPPS_DIR, webapps, DIR_MODE)
                .map_err(backend("building a tree"))?;
        }
        let tenant_tree = tb.write().map_err(backend("building a tree"))?;
        let root = if tenant_name.is_empty() {
            tenant_tree
        } else {
            let mut rb = git
                .treebuilder(base_root.as_ref())
                .map_err(backend("building a tree"))?;
            rb.insert(tenant_name, tenant_tree, DIR_MODE)
                .map_err(backend("building a tree"))?;
            rb.write().map_err(backend("building a tree"))?
        };
        let root = git.find_tree(root).map_err(backend("building a tree"))?;
        let author = git2::Signature::now(&m.author, &format!("{}@wharf.invalid", m.author))
            .map_err(backend("signing the commit"))?;
        let committer = git2::Signature::now("wharf", "wharf@wharf.invalid")
            .map_err(backend("signing the commit"))?;
        let message = format!(
            "{}\n\nWharf revision {} (tenant directory {:?})\n",
            m.message,
            m.revision,
            if prefix.is_empty() { "/" } else { prefix }
        );
        let parents: Vec<&git2::Commit<'_>> = base_commit.iter().collect();
        git.commit(None, &author, &committer, &message, &root, &parents)
            .map_err(b)
    }

    /// Pushes `commit`, built on `base` (the branch's tip when it was
    /// fetched; none for the first commit), to the branch; false when the
    /// branch has moved since.
    fn push(&self, git: &Git, base: Option<Oid>, commit: Oid) -> Result<bool, RepoError> {
        let branch = format!("refs/heads/{}", self.branch);
        let Some(path) = self.local_remote() else {
            // A git server moves the branch only if it is still where the
            // push says it was.
            return self.send(git, commit, &branch);
        };
        // libgit2 pushes to a repository on this machine by overwriting the
        // branch without comparing it with what it was, so of two managers
        // racing, one would lose its commit. The objects go there under a
        // ref of their own; the branch then moves only if it is still
        // `base`, compared under the branch's lock.
        let staging = format!("refs/wharf/incoming/{commit}");
        self.send(git, commit, &staging)?;
        let remote = Git::open(path).map_err(backend("opening the repository"))?;
        let moved = match base {
            Some(old) => remote.reference_matching(&branch, commit, true, old, "wharf: commit"),
            None => remote.reference(&branch, commit, false, "wharf: first commit"),
        };
        if let Ok(mut r) = remote.find_reference(&staging) {
            let _ = r.delete();
        }
        match moved {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.code(),
                    git2::ErrorCode::Modified | git2::ErrorCode::Exists | git2::ErrorCode::Locked
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(RepoError::Backend(format!(
                "git: moving {branch} in {path}: {}",
                e.message()
            ))),
        }
    }

    /// The path of the remote when it is a repository on this machine
    /// (`file://` or a plain path).
    fn local_remote(&self) -> Option<&str> {
        match self.url.strip_prefix("file://") {
            Some(path) => Some(path),
            None => (!self.url.contains("://")).then_some(self.url.as_str()),
        }
    }

    /// Pushes `commit` to the remote's `remote_ref`; false when the remote
    /// refused it because the ref moved (a fast-forward was needed).
    fn send(&self, git: &Git, commit: Oid, remote_ref: &str) -> Result<bool, RepoError> {
        let local_ref = "refs/heads/wharf-push";
        git.reference(local_ref, commit, true, "to push")
            .map_err(backend("preparing the push"))?;
        let mut remote = git
            .remote_anonymous(&self.url)
            .map_err(backend("opening the remote"))?;
        let rejected = std::cell::RefCell::new(None::<String>);
        let mut cb = self.callbacks();
        cb.push_update_reference(|_, status| {
            if let Some(s) = status {
                *rejected.borrow_mut() = Some(s.to_string());
            }
            Ok(())
        });
        let mut opts = git2::PushOptions::new();
        opts.remote_callbacks(cb);
        let refspec = format!("{local_ref}:{remote_ref}");
        let pushed = remote.push(&[&refspec], Some(&mut opts));
        drop(opts);
        match (pushed, rejected.into_inner()) {
            (Ok(()), None) => Ok(true),
            (Ok(()), Some(_)) => Ok(false),
            (Err(e), _) if e.code() == git2::ErrorCode::NotFastForward => Ok(false),
            (Err(e), _) => Err(RepoError::Backend(format!(
                "git: pushing to {}: {}",
                self.url,
                e.message()
            ))),
        }
    }

    /// This node's check-out: the tenant's current revision and the
    /// components of it that `have` does not know.
    pub fn checkout(
        &self,
        tenant: TenantId,
        have: &dyn Fn(&str) -> bool,
    ) -> Result<Option<Fetched>, RepoError> {
        let prefix = self.prefix(tenant)?;
        let git = self.local.lock().unwrap_or_else(|p| p.into_inner());
        let Some(tip) = self.fetch(&git)? else {
            return Ok(None);
        };
        let Some(manifest) = Self::manifest_at(&git, tip, &prefix)? else {
            return Ok(None);
        };
        let mut blobs = BTreeMap::new();
        for (context, app) in &manifest.apps {
            if have(&app.sha256) || blobs.contains_key(&app.sha256) {
                continue;
            }
            let path = format!("{prefix}{}", tree::app_path(context));
            let bytes = Self::file_at(&git, tip, &path)?.ok_or_else(|| {
                RepoError::Integrity(format!(
                    "revision {} names {path}, which commit {tip} does not have",
                    manifest.revision
                ))
            })?;
            check_blob(&app.sha256, &bytes, &format!("{tip}:{path}"))?;
            blobs.insert(app.sha256.clone(), bytes);
        }
        Ok(Some(Fetched { manifest, blobs }))
    }
}

/// Refuses, with what to use instead, URLs this build cannot reach.
fn check_url(url: &str) -> Result<(), RepoError> {
    let scp_like = !url.contains("://")
        && url
            .split_once(':')
            .is_some_and(|(host, _)| host.contains('@') || (host.len() > 1 && !host.contains('/')));
    if url.starts_with("ssh://") || url.starts_with("git+ssh://") || scp_like {
        return Err(RepoError::Unsupported(format!(
            "git url {url:?}: ssh is not supported by this build of wharf; \
             use https:// (user and password, e.g. an access token), git://, file:// or a path"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_urls_are_refused_with_what_to_use() {
        for u in ["ssh://git@example.com/apps.git", "git@example.com:apps.git"] {
            let e = check_url(u).unwrap_err().to_string();
            assert!(
                e.contains("ssh is not supported") && e.contains("https://"),
                "{e}"
            );
        }
        for u in [
            "/srv/git/apps.git",
            "file:///srv/apps.git",
            "https://example.com/apps.git",
        ] {
            check_url(u).unwrap();
        }
    }
}
