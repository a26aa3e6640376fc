//! The svn backend, as in the seed: the `svn` command-line client (Debian
//! `subversion`) against any repository URL it can reach.
//!
//! Each node keeps one working copy per tenant in its data directory, of
//! `url/<tenant id>` (the seed's `SvnUrlAppendTenantId`) or of `url`
//! itself. The manager commits there; workers only ever run `checkout`,
//! `update`, `info`, `log` and `cat`. The password goes to `svn` on its
//! standard input, never on its command line, and is never cached.

use crate::blobs::BlobDir;
use crate::tree::{self, MANIFEST_FILE, WEBAPPS_DIR};
use crate::{check_blob, io, next_manifest, Apps, CommitInfo, Committed, Fetched, RepoError};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use wharf_proto::context::file_name_for_context;
use wharf_proto::{Manifest, TenantId};

const COMMIT_ATTEMPTS: usize = 3;

pub struct SvnRepo {
    url: String,
    creds: Option<(String, Option<String>)>,
    append_tenant_id: bool,
    work: PathBuf,
    blobs: BlobDir,
    /// One svn operation at a time per node: working copies are not
    /// safe to share between concurrent commands.
    lock: Mutex<()>,
}

/// An `svn` command that failed.
struct SvnFailure {
    stderr: String,
}

impl SvnFailure {
    /// The repository or path does not exist (yet).
    fn is_missing(&self) -> bool {
        [
            "E170000", "E160013", "E200009", "E155010", "W160013", "E195012",
        ]
        .iter()
        .any(|code| self.stderr.contains(code))
    }
}

impl SvnRepo {
    pub fn open(
        dir: &Path,
        url: &str,
        user: Option<String>,
        password: Option<String>,
        append_tenant_id: bool,
    ) -> Result<SvnRepo, RepoError> {
        let work = dir.join("svn");
        std::fs::create_dir_all(&work).map_err(io(&work))?;
        Ok(SvnRepo {
            url: url.trim_end_matches('/').to_string(),
            creds: user.map(|u| (u, password)),
            append_tenant_id,
            blobs: BlobDir::open(&dir.join("svn-blobs"))?,
            work,
            lock: Mutex::new(()),
        })
    }

    /// Where `tenant`'s tree lives in the repository.
    fn base_url(&self, tenant: TenantId) -> Result<String, RepoError> {
        let prefix = tree::tenant_prefix(tenant, self.append_tenant_id)?;
        Ok(format!("{}/{}", self.url, prefix.trim_end_matches('/'))
            .trim_end_matches('/')
            .to_string())
    }

    fn wc(&self, tenant: TenantId) -> PathBuf {
        self.work.join("wc").join(tenant.to_string())
    }

    /// Runs `svn` with the node's own configuration directory, no prompts
    /// and no credential cache.
    fn run(&self, args: &[&str]) -> Result<Result<Vec<u8>, SvnFailure>, RepoError> {
        let config_dir = self.work.join("config");
        let mut cmd = Command::new("svn");
        cmd.args(["--non-interactive", "--no-auth-cache", "--config-dir"])
            .arg(&config_dir)
            .env("LC_ALL", "C")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let password = match &self.creds {
            Some((user, password)) => {
                cmd.args(["--username", user]);
                if password.is_some() {
                    cmd.arg("--password-from-stdin");
                }
                password.clone()
            }
            None => None,
        };
        cmd.stdin(if password.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.args(args);
        let mut child = cmd.spawn().map_err(|e| {
            RepoError::Backend(if e.kind() == std::io::ErrorKind::NotFound {
                "the svn client is not installed (Debian: apt install subversion)".to_string()
            } else {
                format!("cannot run svn: {e}")
            })
        })?;
        if let (Some(p), Some(mut stdin)) = (password, child.stdin.take()) {
            let _ = stdin.write_all(format!("{p}\n").as_bytes());
        }
        let out = child
            .wait_with_output()
            .map_err(|e| RepoError::Backend(format!("svn: {e}")))?;
        if out.status.success() {
            Ok(Ok(out.stdout))
        } else {
            Ok(Err(SvnFailure {
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            }))
        }
    }

    /// Runs `svn`; a failure is an error naming the command.
    fn must(&self, args: &[&str]) -> Result<Vec<u8>, RepoError> {
        self.run(args)?.map_err(|f| {
            RepoError::Backend(format!("svn {}: {}", args.first().unwrap_or(&""), f.stderr))
        })
    }

    /// Brings the tenant's working copy up to date; creates the tenant's
    /// directory in the repository first when `create` (manager) and it
    /// is missing. False when there is nothing to check out.
    fn update(&self, tenant: TenantId, create: bool) -> Result<bool, RepoError> {
        let wc = self.wc(tenant);
        let wc_s = wc.display().to_string();
        if wc.join(".svn").exists() {
            // Leftovers of a commit cut short are thrown away first.
            if self.run(&["revert", "-R", &wc_s])?.is_ok()
                && self
                    .run(&["cleanup", "--remove-unversioned", &wc_s])?
                    .is_ok()
                && self
                    .run(&["update", "--accept", "theirs-full", &wc_s])?
                    .is_ok()
            {
                return Ok(true);
            }
            tracing::warn!(wc = %wc_s, "the svn working copy is unusable; checking out afresh");
            std::fs::remove_dir_all(&wc).map_err(io(&wc))?;
        }
        let base = self.base_url(tenant)?;
        match self.run(&["checkout", &base, &wc_s])? {
            Ok(_) => Ok(true),
            Err(f) if f.is_missing() && create => {
                self.must(&[
                    "mkdir",
                    "--parents",
                    "-m",
                    &format!("wharf: a place for tenant {tenant}"),
                    &base,
                ])?;
                self.must(&["checkout", &base, &wc_s])?;
                Ok(true)
            }
            Err(f) if f.is_missing() => {
                let _ = std::fs::remove_dir_all(&wc);
                Ok(false)
            }
            Err(f) => Err(RepoError::Backend(format!(
                "svn checkout {base}: {}",
                f.stderr
            ))),
        }
    }

    fn wc_manifest(&self, tenant: TenantId) -> Result<Option<Manifest>, RepoError> {
        let path = self.wc(tenant).join(MANIFEST_FILE);
        match std::fs::read(&path) {
            Ok(b) => tree::parse_manifest(&b, &path.display().to_string()).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    pub fn head(&self, tenant: TenantId) -> Result<Option<Manifest>, RepoError> {
        let _one = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        if !self.update(tenant, false)? {
            return Ok(None);
        }
        self.wc_manifest(tenant)
    }

    /// Every revision of the tenant, newest first, with the svn revision
    /// that holds it. Manifests read once are kept in the node's data
    /// directory: an svn revision never changes.
    fn revisions(&self, tenant: TenantId) -> Result<Vec<(u64, Manifest)>, RepoError> {
        let base = self.base_url(tenant)?;
        let log = match self.run(&["log", "--xml", "-q", &base])? {
            Ok(out) => String::from_utf8_lossy(&out).to_string(),
            Err(f) if f.is_missing() => return Ok(vec![]),
            Err(f) => return Err(RepoError::Backend(format!("svn log {base}: {}", f.stderr))),
        };
        let cache = self.work.join("manifests").join(tenant.to_string());
        std::fs::create_dir_all(&cache).map_err(io(&cache))?;
        let mut seen: BTreeMap<u64, (u64, Manifest)> = BTreeMap::new();
        for svn_rev in svn_log_revisions(&log) {
            let cached = cache.join(format!("{svn_rev}.json"));
            let bytes = match std::fs::read(&cached) {
                Ok(b) => b,
                Err(_) => {
                    let target = format!("{base}/{MANIFEST_FILE}@{svn_rev}");
                    match self.run(&["cat", &target])? {
                        Ok(b) => {
                            crate::write_atomic(&cached, &b)?;
                            b
                        }
                        // The commit that made the tenant's directory.
                        Err(f) if f.is_missing() => continue,
                        Err(f) => {
                            return Err(RepoError::Backend(format!(
                                "svn cat {target}: {}",
                                f.stderr
                            )))
                        }
                    }
                }
            };
            let m = tree::parse_manifest(&bytes, &format!("{base}/{MANIFEST_FILE}@{svn_rev}"))?;
            seen.entry(m.revision).or_insert((svn_rev, m));
        }
        Ok(seen.into_values().rev().collect())
    }

    pub fn history(&self, tenant: TenantId) -> Result<Vec<Manifest>, RepoError> {
        let _one = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        Ok(self
            .revisions(tenant)?
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
        let _one = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.blob_from_history(tenant, sha256)
    }

    /// [`SvnRepo::blob`] for a caller that holds the lock.
    fn blob_from_history(&self, tenant: TenantId, sha256: &str) -> Result<Vec<u8>, RepoError> {
        if self.blobs.has(sha256) {
            return self.blobs.get(sha256);
        }
        let base = self.base_url(tenant)?;
        for (svn_rev, m) in self.revisions(tenant)? {
            if let Some((context, _)) = m.apps.iter().find(|(_, a)| a.sha256 == sha256) {
                let target = format!("{base}/{}@{svn_rev}", tree::app_path(context));
                let bytes = self.must(&["cat", &target])?;
                check_blob(sha256, &bytes, &target)?;
                self.blobs.put(&bytes)?;
                return Ok(bytes);
            }
        }
        Err(RepoError::NotFound(format!(
            "no revision in {base} has component {sha256}"
        )))
    }

    /// Commits what `edit` makes of the tenant's current applications.
    pub fn commit(
        &self,
        tenant: TenantId,
        info: CommitInfo,
        edit: &dyn Fn(&Apps) -> Result<Apps, RepoError>,
    ) -> Result<Committed, RepoError> {
        let _one = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let wc = self.wc(tenant);
        let wc_s = wc.display().to_string();
        let mut last_error = String::new();
        for attempt in 1..=COMMIT_ATTEMPTS {
            self.update(tenant, true)?;
            let current = self.wc_manifest(tenant)?;
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
            self.write_tree(tenant, &wc, current.as_ref(), &manifest)?;
            self.must(&["add", "--force", "--no-ignore", &wc_s])?;
            let message = format!(
                "{}\n\nWharf revision {} by {}",
                manifest.message, manifest.revision, manifest.author
            );
            match self.run(&["commit", "-m", &message, &wc_s])? {
                Ok(_) => {
                    tracing::info!(tenant, revision = manifest.revision, "committed to svn");
                    return Ok(Committed {
                        manifest,
                        changed: true,
                    });
                }
                Err(f) => {
                    tracing::info!(attempt, error = %f.stderr, "svn commit failed; updating and trying again");
                    last_error = f.stderr;
                }
            }
        }
        Err(RepoError::Backend(format!(
            "svn commit to {}: {last_error}",
            self.base_url(tenant)?
        )))
    }

    /// Makes the working copy hold exactly `m`.
    fn write_tree(
        &self,
        tenant: TenantId,
        wc: &Path,
        old: Option<&Manifest>,
        m: &Manifest,
    ) -> Result<(), RepoError> {
        let webapps = wc.join(WEBAPPS_DIR);
        std::fs::create_dir_all(&webapps).map_err(io(&webapps))?;
        if let Some(old) = old {
            for context in old.apps.keys().filter(|c| !m.apps.contains_key(*c)) {
                let gone = webapps.join(file_name_for_context(context));
                self.must(&["rm", "--force", &gone.display().to_string()])?;
            }
        }
        for (context, app) in &m.apps {
            let path = webapps.join(file_name_for_context(context));
            if old
                .and_then(|o| o.apps.get(context))
                .is_some_and(|a| a.sha256 == app.sha256)
                && path.exists()
            {
                continue;
            }
            let bytes = self.blob_from_history(tenant, &app.sha256).map_err(|_| {
                RepoError::MissingBlob {
                    context: context.clone(),
                    sha256: app.sha256.clone(),
                }
            })?;
            std::fs::write(&path, bytes).map_err(io(&path))?;
        }
        let mpath = wc.join(MANIFEST_FILE);
        std::fs::write(&mpath, m.to_json()).map_err(io(&mpath))
    }

    /// This node's check-out of the tenant's current revision, with the
    /// components `have` does not know.
    pub fn checkout(
        &self,
        tenant: TenantId,
        have: &dyn Fn(&str) -> bool,
    ) -> Result<Option<Fetched>, RepoError> {
        let _one = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        if !self.update(tenant, false)? {
            return Ok(None);
        }
        let Some(manifest) = self.wc_manifest(tenant)? else {
            return Ok(None);
        };
        let wc = self.wc(tenant);
        let mut blobs = BTreeMap::new();
        for (context, app) in &manifest.apps {
            if have(&app.sha256) || blobs.contains_key(&app.sha256) {
                continue;
            }
            let path = wc.join(tree::app_path(context));
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            check_blob(&app.sha256, &bytes, &path.display().to_string())?;
            blobs.insert(app.sha256.clone(), bytes);
        }
        Ok(Some(Fetched { manifest, blobs }))
    }
}

/// The revision numbers of `svn log --xml`, newest first.
fn svn_log_revisions(xml: &str) -> Vec<u64> {
    let mut out: Vec<u64> = xml
        .split("revision=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next()?.parse().ok())
        .collect();
    out.sort_unstable_by(|a, b| b.cmp(a));
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_revisions_are_read_newest_first() {
        let xml = "<?xml version=\"1.0\"?>\n<log>\n<logentry\n   revision=\"3\">\n</logentry>\n\
                   <logentry\n   revision=\"12\">\n</logentry>\n<logentry revision=\"1\"></logentry>\n</log>";
        assert_eq!(svn_log_revisions(xml), [12, 3, 1]);
        assert!(svn_log_revisions("<log></log>").is_empty());
    }
}
