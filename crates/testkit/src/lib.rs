//! Test support for Wharf: WebAssembly test components built from WAT at
//! test time (no wasm toolchain, no committed binaries), a runner for the
//! real `wharf` binary, and waiting on conditions with a deadline.

pub mod backend;
pub mod browser;
pub mod cluster;
pub mod components;
pub mod git_http;
pub mod lb;
pub mod node;
pub mod process;
pub mod svn;
pub mod wait;

pub use cluster::TestCluster;
pub use components::{component_from_wat, fixtures};
pub use lb::{TestLb, TEST_SECRET};
pub use node::{TestNode, PATIENCE};
pub use process::{wharf_bin, WharfProcess};
pub use svn::{svn_available, SvnServer};
pub use wait::{wait_until, wait_until_async};
