//! The tree a tenant's revision has in a git or svn repository, beside
//! what the seed's Carbon kept there (its `webapps/` directory):
//!
//! ```text
//! <prefix>manifest.json          the revision: context → sha256, limits, author
//! <prefix>webapps/hello.wasm     the component served at /hello
//! <prefix>webapps/ROOT.wasm      … at /
//! <prefix>webapps/shop#cart.wasm … at /shop/cart
//! ```
//!
//! `<prefix>` is `<tenant id>/` when `url_append_tenant_id` is on (the
//! seed's `SvnUrlAppendTenantId`), else empty, and then only the super
//! tenant has a place in the repository.

use crate::RepoError;
use wharf_proto::context::file_name_for_context;
use wharf_proto::{Manifest, TenantId, SUPER_TENANT};

pub const MANIFEST_FILE: &str = "manifest.json";
pub const WEBAPPS_DIR: &str = "webapps";

/// Where `tenant`'s tree starts: `""` or `"<id>/"`.
pub fn tenant_prefix(tenant: TenantId, append_tenant_id: bool) -> Result<String, RepoError> {
    if append_tenant_id {
        Ok(format!("{tenant}/"))
    } else if tenant == SUPER_TENANT {
        Ok(String::new())
    } else {
        Err(RepoError::Unsupported(format!(
            "tenant {tenant} has no place in this repository: with url_append_tenant_id = false \
             only the super tenant's applications are kept there; set it to true to give each \
             tenant its own directory"
        )))
    }
}

/// The path of an application's component within a tenant's tree.
pub fn app_path(context: &str) -> String {
    format!("{WEBAPPS_DIR}/{}", file_name_for_context(context))
}

/// Every file of a revision's tree except the manifest: path → sha256.
pub fn app_files(m: &Manifest) -> Vec<(String, &str)> {
    m.apps
        .iter()
        .map(|(c, a)| (app_path(c), a.sha256.as_str()))
        .collect()
}

/// Reads a manifest found at `where_` in a repository.
pub fn parse_manifest(bytes: &[u8], where_: &str) -> Result<Manifest, RepoError> {
    Manifest::from_json(bytes).map_err(|e| RepoError::Corrupt {
        path: where_.into(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_paths() {
        assert_eq!(tenant_prefix(0, true).unwrap(), "0/");
        assert_eq!(tenant_prefix(7, true).unwrap(), "7/");
        assert_eq!(tenant_prefix(0, false).unwrap(), "");
        let e = tenant_prefix(7, false).unwrap_err().to_string();
        assert!(e.contains("url_append_tenant_id"), "{e}");
        assert_eq!(app_path("/"), "webapps/ROOT.wasm");
        assert_eq!(app_path("/shop/cart"), "webapps/shop#cart.wasm");
    }
}
