//! Wharf configuration: `wharf.toml` read into validated, typed settings.
//!
//! Reading happens in two layers, as in quickwit: the TOML text is parsed into
//! a generic table, then [`reader::Reader`] walks it key by key into typed
//! structs, collecting *every* problem (unknown keys, wrong types, bad values)
//! with the file and the dotted key it came from, so `wharf config check`
//! can print them all at once. The process environment is never read here:
//! callers pass what they want considered.

mod clustering;
mod error;
mod lb;
pub mod lbconf;
mod node;
mod reader;
mod sync;

pub use clustering::{ClusteringConfig, MIN_SECRET_LEN, SECRET_ENV};
pub use error::{ConfigError, ConfigErrors};
pub use lb::{
    AccessLog, AccessLogFormat, HealthCheck, HostCert, LbConfig, LbHttps, LbListener, LbSettings,
    DEFAULT_LB_HTTPS_PORT, DEFAULT_LB_HTTP_PORT, DEFAULT_LB_MEMBER_PORT, DEFAULT_LB_STATUS_PORT,
};
pub use node::{
    Env, HttpListener, HttpsListener, NodeConfig, Overrides, RuntimeConfig, ServerConfig,
    StatusListener, DEFAULT_HTTPS_PORT, DEFAULT_HTTP_PORT, DEFAULT_MEMBER_PORT,
    DEFAULT_STATUS_PORT,
};
pub use reader::Reader;
pub use sync::{
    AdminConfig, RepositoryType, SyncConfig, TenantLimitDefaults, TenantsConfig,
    ADMIN_PASSWORD_ENV, REPOSITORY_PASSWORD_ENV,
};

/// Shortest admin password accepted.
pub const MIN_PASSWORD_LEN: usize = 12;

/// Adds `offset` to a configured port, as carbon.xml's `Offset` does.
///
/// Port 0 asks the operating system for a free port and stays 0 whatever the
/// offset, so tests and sandboxes can bind ephemeral ports.
pub fn offset_port(port: u16, offset: u16) -> Option<u16> {
    if port == 0 {
        Some(0)
    } else {
        port.checked_add(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::offset_port;

    #[test]
    fn offset_applies_except_to_ephemeral_ports() {
        assert_eq!(offset_port(9763, 2), Some(9765));
        assert_eq!(offset_port(0, 2), Some(0));
        assert_eq!(offset_port(65535, 1), None);
    }
}
