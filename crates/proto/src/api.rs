//! Bodies of the admin API (`/api/v1`, JSON), shared by the manager that
//! answers and the CLI that asks. The OpenAPI document the manager serves
//! describes the same shapes.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The path every admin API route starts with.
pub const API_PREFIX: &str = "/api/v1";

/// Every error: a sentence for a person, and what is known besides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    /// A revision the call did commit before it failed (e.g. no worker
    /// node was there to serve it yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginRequest {
    pub user: String,
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub user: String,
    /// The tenant domain the user administers; `None` for the super admin.
    pub tenant: Option<String>,
    pub expires_in_s: u64,
}

/// How far a revision has reached one worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RolloutState {
    /// Serves this revision or a later one.
    Serving,
    /// Still on an earlier revision.
    Pending,
    /// Reported that it could not check this revision out.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRollout {
    pub node_id: String,
    pub sub_domain: Option<String>,
    pub state: RolloutState,
    /// The revision it serves (0: none yet).
    pub revision: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where a revision stands across the ready workers of the domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    pub tenant: Option<String>,
    pub revision: u64,
    /// Every ready worker serves it (false when there is no worker).
    pub complete: bool,
    pub workers: Vec<WorkerRollout>,
}

/// The answer to a call that made a revision: deploy, undeploy, rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeResponse {
    pub revision: u64,
    pub message: String,
    /// The rollout when the call returned (after waiting, unless asked not to).
    pub rollout: Rollout,
    /// Set when the call stopped waiting before every worker served it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// One application of the current revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppInfo {
    pub context: String,
    pub sha256: String,
    pub size: u64,
    pub deployed_at_ms: u64,
    pub deployed_by: String,
    /// The revision each worker serves, and whether that revision has
    /// this content at this context.
    pub workers: Vec<WorkerApp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerApp {
    pub node_id: String,
    pub revision: u64,
    pub serving: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppList {
    pub tenant: Option<String>,
    /// The current revision (0: nothing deployed yet).
    pub revision: u64,
    pub apps: Vec<AppInfo>,
    pub rollout: Rollout,
}

/// One revision of the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionInfo {
    pub revision: u64,
    pub parent: Option<u64>,
    pub created_at_ms: u64,
    pub author: String,
    pub message: String,
    /// Context path → sha256.
    pub apps: BTreeMap<String, String>,
    pub current: bool,
}

/// A cluster member as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    pub node_id: String,
    pub role: String,
    pub domain: String,
    pub sub_domain: Option<String>,
    pub state: String,
    pub address: String,
    /// Tenant id → the revision the member serves (workers) or announces
    /// (managers).
    pub revisions: BTreeMap<String, u64>,
    pub last_heard_ms: Option<u64>,
}

/// Limits a super admin sets for one tenant; what is not set follows the
/// manager's `[tenants]` defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantLimitsPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_apps: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit_mb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_instances: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<u32>,
}

impl TenantLimitsPatch {
    /// `self` over `defaults`.
    pub fn over(&self, defaults: crate::TenantLimits) -> crate::TenantLimits {
        crate::TenantLimits {
            max_apps: self.max_apps.unwrap_or(defaults.max_apps),
            memory_limit_mb: self.memory_limit_mb.unwrap_or(defaults.memory_limit_mb),
            max_instances: self.max_instances.unwrap_or(defaults.max_instances),
            requests_per_second: self
                .requests_per_second
                .unwrap_or(defaults.requests_per_second),
        }
    }

    /// `other`'s values where it sets them, `self`'s elsewhere.
    pub fn merged(&self, other: &TenantLimitsPatch) -> TenantLimitsPatch {
        TenantLimitsPatch {
            max_apps: other.max_apps.or(self.max_apps),
            memory_limit_mb: other.memory_limit_mb.or(self.memory_limit_mb),
            max_instances: other.max_instances.or(self.max_instances),
            requests_per_second: other.requests_per_second.or(self.requests_per_second),
        }
    }
}

/// A tenant as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantInfo {
    pub id: crate::TenantId,
    pub domain: String,
    pub active: bool,
    pub created_at_ms: u64,
    /// Its administrator's user name (`admin@<domain>`).
    pub admin: String,
    /// The limits in force.
    pub limits: crate::TenantLimits,
    /// The limits set for it (the rest are the defaults).
    pub overrides: TenantLimitsPatch,
    /// The names of its configuration values (the values are not shown).
    pub config_keys: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    pub domain: String,
    /// The tenant admin's password; made up (and returned once) when absent.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub limits: TenantLimitsPatch,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedTenant {
    pub tenant: TenantInfo,
    pub admin_user: String,
    /// Set only when the password was made up: shown this once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_password: Option<String>,
}

/// A tenant's configuration values: environment variables only its
/// applications see. Replaces what was set before.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub env: BTreeMap<String, String>,
}

/// Milliseconds since the Unix epoch as `YYYY-MM-DD hh:mm:ss UTC`, the way
/// the CLI and the console show the times in these bodies.
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_read_as_utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(super::utc(1_795_607_212_000), "2026-11-25 11:46:52 UTC");
        assert_eq!(super::utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }
}
