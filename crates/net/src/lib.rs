//! Network plumbing shared by the node and the load balancer: TLS
//! configuration (with a generated certificate when none is configured) and
//! an HTTP/1.1 + HTTP/2 accept loop with graceful shutdown.

pub mod framing;
pub mod prefixed;
pub mod server;
pub mod shutdown;
pub mod tls;

pub use prefixed::Prefixed;
pub use server::{serve, serve_with_takeover, Connections, ServeOptions};
pub use shutdown::{Shutdown, ShutdownSignal};
