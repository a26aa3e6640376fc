//! The table of deployed applications and how a path finds its app.
//!
//! The table is immutable; a deploy builds a new one and swaps it in whole
//! (see `Node::apps`), so a request sees one consistent table from start to
//! end and keeps the `Arc<App>` it started with even if a redeploy replaces
//! it meanwhile. The deployment synchronizer will swap in a whole revision
//! the same way.

use std::collections::BTreeMap;
use std::sync::Arc;
use wharf_proto::gossip::RevisionRef;
use wharf_proto::{TenantId, SUPER_TENANT};

/// Everything a node serves: per tenant, the table of one revision (or of
/// the hot-deployment directory, for the super tenant of a stand-alone
/// node). Immutable; swapped whole, one tenant at a time.
#[derive(Debug)]
pub struct Served<A> {
    tenants: BTreeMap<TenantId, Arc<TenantApps<A>>>,
}

/// One tenant's applications and the revision they are.
#[derive(Debug)]
pub struct TenantApps<A> {
    /// `None` for applications that come from the hot-deployment directory.
    pub revision: Option<RevisionRef>,
    pub table: AppTable<A>,
}

impl<A> Default for TenantApps<A> {
    fn default() -> Self {
        TenantApps {
            revision: None,
            table: AppTable::default(),
        }
    }
}

impl<A> Default for Served<A> {
    fn default() -> Self {
        Served {
            tenants: BTreeMap::new(),
        }
    }
}

impl<A> Served<A> {
    pub fn tenant(&self, id: TenantId) -> Option<&Arc<TenantApps<A>>> {
        self.tenants.get(&id)
    }

    pub fn tenants(&self) -> impl Iterator<Item = (TenantId, &Arc<TenantApps<A>>)> {
        self.tenants.iter().map(|(id, t)| (*id, t))
    }

    /// A copy with `apps` as the tenant's applications.
    pub fn with_tenant(&self, id: TenantId, apps: TenantApps<A>) -> Self {
        let mut tenants = self.tenants.clone();
        tenants.insert(id, Arc::new(apps));
        Served { tenants }
    }

    /// A copy without the tenant.
    pub fn without_tenant(&self, id: TenantId) -> Self {
        let mut tenants = self.tenants.clone();
        tenants.remove(&id);
        Served { tenants }
    }

    /// The super tenant's table (owner of un-prefixed paths).
    pub fn super_table(&self) -> Option<&AppTable<A>> {
        self.tenants.get(&SUPER_TENANT).map(|t| &t.table)
    }

    /// A copy whose super tenant table is `f` of the current one (for the
    /// hot-deployment directory).
    pub fn map_super(&self, f: impl FnOnce(&AppTable<A>) -> AppTable<A>) -> Self {
        let current = self.tenants.get(&SUPER_TENANT);
        let table = f(current.map_or(&AppTable::default(), |t| &t.table));
        self.with_tenant(
            SUPER_TENANT,
            TenantApps {
                revision: current.and_then(|t| t.revision.clone()),
                table,
            },
        )
    }

    /// Applications across every tenant.
    pub fn len(&self) -> usize {
        self.tenants.values().map(|t| t.table.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The app serving `path` for the super tenant.
    pub fn route(&self, path: &str) -> Option<&Arc<A>> {
        self.super_table()?.route(path)
    }
}

/// Deployed applications keyed by context path (`/`, `/hello`, `/a/b`).
#[derive(Debug)]
pub struct AppTable<A> {
    by_context: BTreeMap<String, Arc<A>>,
}

impl<A> Clone for AppTable<A> {
    fn clone(&self) -> Self {
        AppTable {
            by_context: self.by_context.clone(),
        }
    }
}

impl<A> Default for AppTable<A> {
    fn default() -> Self {
        AppTable {
            by_context: BTreeMap::new(),
        }
    }
}

impl<A> AppTable<A> {
    /// A copy of this table with `app` at `context` (replacing any there).
    pub fn with(&self, context: &str, app: Arc<A>) -> Self {
        let mut by_context = self.by_context.clone();
        by_context.insert(context.to_string(), app);
        AppTable { by_context }
    }

    /// A copy of this table without the app at `context`.
    pub fn without(&self, context: &str) -> Self {
        let mut by_context = self.by_context.clone();
        by_context.remove(context);
        AppTable { by_context }
    }

    pub fn get(&self, context: &str) -> Option<&Arc<A>> {
        self.by_context.get(context)
    }

    pub fn len(&self) -> usize {
        self.by_context.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_context.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Arc<A>)> {
        self.by_context.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The app whose context path is the longest whole-segment prefix of
    /// `path`: `/hello` serves `/hello`, `/hello/` and `/hello/x`, but not
    /// `/helloworld`; the root app `/` serves whatever no other app does.
    pub fn route(&self, path: &str) -> Option<&Arc<A>> {
        let mut candidate = path.trim_end_matches('/');
        loop {
            if candidate.is_empty() {
                return self.by_context.get("/");
            }
            if let Some(app) = self.by_context.get(candidate) {
                return Some(app);
            }
            match candidate.rfind('/') {
                Some(i) => candidate = &candidate[..i],
                None => return self.by_context.get("/"),
            }
        }
    }
}

pub use wharf_proto::context::{context_for_file_name, validate_context};

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn table(contexts: &[&str]) -> AppTable<String> {
        contexts.iter().fold(AppTable::default(), |t, c| {
            t.with(c, Arc::new(c.to_string()))
        })
    }

    fn route<'a>(t: &'a AppTable<String>, path: &str) -> Option<&'a str> {
        t.route(path).map(|a| a.as_str())
    }

    #[test]
    fn longest_whole_segment_prefix_wins() {
        let t = table(&["/hello", "/hello/admin", "/shop"]);
        assert_eq!(route(&t, "/hello"), Some("/hello"));
        assert_eq!(route(&t, "/hello/"), Some("/hello"));
        assert_eq!(route(&t, "/hello/x/y"), Some("/hello"));
        assert_eq!(route(&t, "/hello/admin/users"), Some("/hello/admin"));
        assert_eq!(route(&t, "/helloworld"), None);
        assert_eq!(route(&t, "/"), None);
        let t = t.with("/", Arc::new("/".into()));
        assert_eq!(route(&t, "/helloworld"), Some("/"));
        assert_eq!(route(&t, "/"), Some("/"));
        assert_eq!(route(&t, ""), Some("/"));
    }

    proptest! {
        /// Whatever the table and path, the chosen app's context is a
        /// whole-segment prefix of the path, and no longer such prefix is
        /// deployed.
        #[test]
        fn route_picks_the_longest_segment_prefix(
            contexts in proptest::collection::vec("(/[a-c]{1,2}){1,3}", 0..6),
            root in any::<bool>(),
            path in "(/[a-c]{1,2}){0,4}/?",
        ) {
            let mut refs: Vec<&str> = contexts.iter().map(String::as_str).collect();
            if root { refs.push("/"); }
            let t = table(&refs);
            let is_prefix = |c: &str| c == "/" || path == c || path.starts_with(&format!("{c}/"));
            let best = refs.iter().filter(|c| is_prefix(c)).max_by_key(|c| if **c == "/" { 0 } else { c.len() });
            prop_assert_eq!(route(&t, &path), best.copied());
        }
    }
}
