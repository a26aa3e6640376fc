//! `[deployment_synchronizer]` (the seed's carbon.xml `DeploymentSynchronizer`)
//! and `[admin]` (the management node's admin API).

use crate::reader::Reader;
use std::path::Path;
use std::time::Duration;

/// The environment variable that may hold the repository password
/// (the seed's `SvnPassword`), so it need not sit in the file.
pub const REPOSITORY_PASSWORD_ENV: &str = "WHARF_REPOSITORY_PASSWORD";
/// The environment variable that may set the admin password of a manager.
pub const ADMIN_PASSWORD_ENV: &str = "WHARF_ADMIN_PASSWORD";

/// Where revisions are kept (`RepositoryType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepositoryType {
    /// In the manager's data directory, served to workers over its HTTPS
    /// listener; nothing to set up.
    Builtin,
    /// Any git repository, one commit per revision.
    Git,
    /// A Subversion repository, as in the seed, through the `svn` client.
    Svn,
}

impl RepositoryType {
    pub fn as_str(self) -> &'static str {
        match self {
            RepositoryType::Builtin => "builtin",
            RepositoryType::Git => "git",
            RepositoryType::Svn => "svn",
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct SyncConfig {
    /// Take applications from the repository (`Enabled`). Off: the node is
    /// stand-alone and deploys from its hot-deployment directory only.
    pub enabled: bool,
    /// Commit deployments to the repository (`AutoCommit`); managers only.
    pub auto_commit: bool,
    /// Follow the repository's revisions (`AutoCheckout`).
    pub auto_checkout: bool,
    pub repository_type: RepositoryType,
    /// The repository (`SvnUrl`); git and svn only.
    pub url: Option<String>,
    /// The git branch revisions are committed to.
    pub branch: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// Each tenant's applications under `url/<tenant id>` (`SvnUrlAppendTenantId`).
    pub url_append_tenant_id: bool,
    /// How often a node checks the repository for a revision it missed.
    pub check_interval: Duration,
    /// How long a starting worker waits for its first check-out before it
    /// reports ready with what it has.
    pub initial_sync_timeout: Duration,
}

impl std::fmt::Debug for SyncConfig {
    // Never prints the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncConfig")
            .field("enabled", &self.enabled)
            .field("auto_commit", &self.auto_commit)
            .field("auto_checkout", &self.auto_checkout)
            .field("repository_type", &self.repository_type)
            .field("url", &self.url)
            .field("branch", &self.branch)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("url_append_tenant_id", &self.url_append_tenant_id)
            .field("check_interval", &self.check_interval)
            .finish_non_exhaustive()
    }
}

impl SyncConfig {
    pub(crate) fn read(
        mut r: Reader,
        base: &Path,
        worker_node: bool,
        env: &crate::Env,
    ) -> SyncConfig {
        let enabled = r.bool_or("enabled", true);
        let auto_commit = r.bool_or("auto_commit", !worker_node);
        if worker_node && auto_commit {
            r.error(
                "auto_commit",
                "a worker node never writes to the repository: set auto_commit = false \
                 (as the seed's worker nodes do) or run this node as a manager",
            );
        }
        let auto_checkout = r.bool_or("auto_checkout", true);
        let repository_type = match r.string_or("repository_type", "builtin").as_str() {
            "builtin" => RepositoryType::Builtin,
            "git" => RepositoryType::Git,
            "svn" => RepositoryType::Svn,
            other => {
                r.error(
                    "repository_type",
                    format!(
                        "{other:?} is not a repository type: use \"builtin\", \"git\" or \"svn\""
                    ),
                );
                RepositoryType::Builtin
            }
        };
        let url = r.opt_string("url");
        match (repository_type, &url) {
            (RepositoryType::Builtin, Some(_)) => r.error(
                "url",
                "the builtin repository has no URL: it lives in the manager's data directory \
                 and workers find the manager through the cluster",
            ),
            (RepositoryType::Git | RepositoryType::Svn, None) if enabled => r.error(
                "url",
                format!(
                    "repository_type = \"{}\" needs the repository's url",
                    repository_type.as_str()
                ),
            ),
            (_, Some(u)) if u.trim().is_empty() => r.error("url", "must not be empty"),
            _ => {}
        }
        // A relative local path is taken relative to the configuration file,
        // like every other path.
        let url = url.map(|u| {
            if u.contains("://") || u.starts_with('/') || u.contains('@') {
                u
            } else {
                base.join(&u).display().to_string()
            }
        });
        let branch = r.string_or("branch", "main");
        if branch.is_empty() || branch.contains(['\0', ' ', '~', '^', ':', '\\']) {
            r.error("branch", format!("{branch:?} is not a branch name"));
        }
        let user = r.opt_string("user");
        let in_file = r.opt_string("password");
        let password_file = r.opt_path("password_file", base);
        let password = match (in_file, password_file, env.get(REPOSITORY_PASSWORD_ENV)) {
            (Some(p), None, _) => Some(p),
            (None, Some(path), _) => match std::fs::read_to_string(&path) {
                Ok(p) => Some(p.trim_end().to_string()),
                Err(e) => {
                    r.error(
                        "password_file",
                        format!("cannot read {}: {e}", path.display()),
                    );
                    None
                }
            },
            (Some(_), Some(_), _) => {
                r.error("password_file", "set password or password_file, not both");
                None
            }
            (None, None, from_env) => from_env.cloned(),
        };
        if repository_type == RepositoryType::Builtin && (user.is_some() || password.is_some()) {
            r.error(
                "user",
                "the builtin repository takes no user or password: workers are authorised by the cluster secret",
            );
        }
        let url_append_tenant_id = r.bool_or("url_append_tenant_id", true);
        let check_interval =
            Duration::from_millis(r.u64_or("check_interval_ms", 15_000, 100, 86_400_000));
        let initial_sync_timeout =
            Duration::from_millis(r.u64_or("initial_sync_timeout_ms", 10_000, 0, 3_600_000));
        r.finish();
        SyncConfig {
            enabled,
            auto_commit,
            auto_checkout,
            repository_type,
            url,
            branch,
            user,
            password,
            url_append_tenant_id,
            check_interval,
            initial_sync_timeout,
        }
    }
}

/// `[admin]`: the admin API of a management node.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// How long a login session lasts.
    pub session_ttl: Duration,
    /// Largest component accepted by a deploy, in bytes.
    pub max_upload: u64,
    /// How long a deploy call waits for the workers to serve the revision.
    pub rollout_timeout: Duration,
    /// `WHARF_ADMIN_PASSWORD`, when set: the admin password to use.
    pub password_from_env: Option<String>,
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("session_ttl", &self.session_ttl)
            .field("max_upload", &self.max_upload)
            .field("rollout_timeout", &self.rollout_timeout)
            .field(
                "password_from_env",
                &self.password_from_env.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl AdminConfig {
    pub(crate) fn read(mut r: Reader, env: &crate::Env) -> AdminConfig {
        let cfg = AdminConfig {
            session_ttl: Duration::from_secs(r.u64_or("session_ttl_s", 3600, 60, 30 * 86_400)),
            max_upload: r.u64_or("max_upload_mb", 64, 1, 4096) * 1024 * 1024,
            rollout_timeout: Duration::from_millis(r.u64_or(
                "rollout_timeout_ms",
                30_000,
                0,
                3_600_000,
            )),
            password_from_env: env.get(ADMIN_PASSWORD_ENV).cloned(),
        };
        if let Some(p) = &cfg.password_from_env {
            if p.chars().count() < crate::MIN_PASSWORD_LEN {
                r.env_error(
                    ADMIN_PASSWORD_ENV,
                    format!(
                        "{} characters; use at least {}",
                        p.chars().count(),
                        crate::MIN_PASSWORD_LEN
                    ),
                );
            }
        }
        r.finish();
        cfg
    }
}

#[cfg(test)]
mod tests {
    use crate::{NodeConfig, RepositoryType};
    use std::path::Path;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<NodeConfig, String> {
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        NodeConfig::from_toml_with_env(text, "w.toml", Path::new("/etc/wharf"), &env)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_builtin_and_follow_the_role() {
        let c = load("", &[]).unwrap();
        let s = &c.deployment_synchronizer;
        assert!(s.enabled && s.auto_commit && s.auto_checkout);
        assert_eq!(s.repository_type, RepositoryType::Builtin);
        assert_eq!(s.check_interval.as_secs(), 15);
        let c = load("[server]\nworker_node = true\n", &[]).unwrap();
        assert!(!c.deployment_synchronizer.auto_commit);
    }

    #[test]
    fn the_seed_svn_settings_map() {
        let text = "[server]\nworker_node = true\n[deployment_synchronizer]\nauto_commit = false\n\
                    repository_type = \"svn\"\nurl = \"http://10.100.3.115/svn/repos/as\"\nuser = \"wso2\"\n";
        let c = load(text, &[(super::REPOSITORY_PASSWORD_ENV, "s3cret")]).unwrap();
        let s = &c.deployment_synchronizer;
        assert_eq!(s.repository_type, RepositoryType::Svn);
        assert_eq!(s.url.as_deref(), Some("http://10.100.3.115/svn/repos/as"));
        assert_eq!(s.password.as_deref(), Some("s3cret"));
        assert!(s.url_append_tenant_id);
        assert!(!format!("{s:?}").contains("s3cret"), "never printed");
    }

    #[test]
    fn mistakes_are_named() {
        let e = load(
            "[server]\nworker_node = true\n[deployment_synchronizer]\nauto_commit = true\n",
            &[],
        )
        .unwrap_err();
        assert!(
            e.contains("w.toml:deployment_synchronizer.auto_commit: a worker node never writes"),
            "{e}"
        );
        let e = load(
            "[deployment_synchronizer]\nrepository_type = \"cvs\"\n",
            &[],
        )
        .unwrap_err();
        assert!(e.contains("\"cvs\" is not a repository type"), "{e}");
        let e = load(
            "[deployment_synchronizer]\nrepository_type = \"git\"\n",
            &[],
        )
        .unwrap_err();
        assert!(e.contains("needs the repository's url"), "{e}");
        let e = load("[deployment_synchronizer]\nurl = \"/srv/x\"\n", &[]).unwrap_err();
        assert!(e.contains("the builtin repository has no URL"), "{e}");
        let e = load("", &[(super::ADMIN_PASSWORD_ENV, "short")]).unwrap_err();
        assert!(
            e.contains("<environment>:WHARF_ADMIN_PASSWORD: 5 characters"),
            "{e}"
        );
    }

    #[test]
    fn relative_repository_paths_follow_the_file() {
        let c = load(
            "[deployment_synchronizer]\nrepository_type = \"git\"\nurl = \"repo.git\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            c.deployment_synchronizer.url.as_deref(),
            Some("/etc/wharf/repo.git")
        );
    }
}

/// The limits of a tenant that sets none of its own (see
/// `wharf_proto::TenantLimits` for their meaning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantLimitDefaults {
    pub max_apps: u32,
    pub memory_limit_mb: u64,
    pub max_instances: u32,
    pub requests_per_second: u32,
}

/// `[tenants]`: what a management node gives the tenants it creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantsConfig {
    pub defaults: TenantLimitDefaults,
    /// The ids this manager assigns, lowest first (`ids = "101-200"`), so
    /// that managers of different cluster domains never hand out the same.
    pub first_id: u32,
    pub last_id: u32,
}

impl TenantsConfig {
    pub(crate) fn read(mut r: Reader) -> TenantsConfig {
        let defaults = TenantLimitDefaults {
            max_apps: r.u32_or("max_apps", 20, 1, 100_000),
            memory_limit_mb: r.u64_or("memory_limit_mb", 128, 1, 4096),
            max_instances: r.u32_or("max_instances", 100, 1, 100_000),
            requests_per_second: r.u32_or("requests_per_second", 1000, 0, 10_000_000),
        };
        let ids = r.string_or("ids", "1-1000000");
        let range = ids
            .split_once('-')
            .and_then(|(a, b)| Some((a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?)))
            .filter(|(a, b)| *a >= 1 && a <= b);
        let (first_id, last_id) = range.unwrap_or_else(|| {
            r.error(
                "ids",
                format!("{ids:?} is not a range of tenant ids like \"1-1000\" (ids start at 1; 0 is the super tenant)"),
            );
            (1, 1_000_000)
        });
        r.finish();
        TenantsConfig {
            defaults,
            first_id,
            last_id,
        }
    }
}
