//! Wharf's deployment synchronizer: where revisions of applications are
//! kept (the repository backends) and, to come, how workers follow them.
//!
//! Today: the `builtin` backend ([`builtin::BuiltinRepo`]), the default
//! with zero setup — revisions as manifests and the components as
//! content-addressed blobs in the manager's data directory.

pub mod builtin;

pub use builtin::{BuiltinRepo, RepoError};
