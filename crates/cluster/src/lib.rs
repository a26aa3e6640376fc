//! Cluster membership for Wharf: gossip with well-known addresses as seeds
//! (the seed's `membershipScheme=wka`), on chitchat.
//!
//! Every member (load balancer, manager, worker) publishes its properties as
//! chitchat key-values; [`member::Member`] is the typed view of them. Cluster
//! traffic is sealed with an AEAD keyed by the shared secret
//! ([`seal`], [`transport::SealedUdpTransport`]).

pub mod cluster;
mod join;
pub mod member;
pub mod seal;
pub mod transport;

pub use cluster::{Cluster, JoinError, JoinOptions, Member, View};
pub use join::join_configured;
pub use member::{MemberInfo, MemberState, Role};
