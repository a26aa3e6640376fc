//! A running member: joins through the well-known members, publishes its
//! properties, and keeps a typed view of every live member.

use crate::member::{MemberInfo, MemberState};
use chitchat::transport::Transport;
use chitchat::{spawn_chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How a member joins.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// Unique across the cluster, stable across restarts of the member.
    pub node_id: String,
    /// Larger on every restart (e.g. the start time), so a restarted member
    /// is a new generation and peers forget the old one's state.
    pub generation: u64,
    /// The address to bind.
    pub listen_addr: SocketAddr,
    /// The address others reach this member on (`localMemberHost:localMemberPort`).
    pub advertise_addr: SocketAddr,
    /// Well-known members, `host:port`; re-resolved and retried until one answers.
    pub seeds: Vec<String>,
    pub gossip_interval: Duration,
    pub dead_member_grace: Duration,
}

/// One member as seen from here.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Member {
    pub node_id: String,
    pub generation: u64,
    pub gossip_addr: SocketAddr,
    #[serde(flatten)]
    pub info: MemberInfo,
}

/// The live members, sorted by node id.
pub type View = Arc<Vec<Member>>;

#[derive(Debug, thiserror::Error)]
#[error("cannot join the cluster: {0}")]
pub struct JoinError(pub(crate) String);

/// When each live member's heartbeat last advanced, by node id.
type Heard = Arc<std::sync::Mutex<BTreeMap<String, (u64, std::time::Instant)>>>;

fn note_heartbeats(heard: &Heard, chitchat: &chitchat::Chitchat, live: &[&ChitchatId]) {
    let now = std::time::Instant::now();
    let mut heard = heard.lock().expect("not poisoned");
    heard.retain(|id, _| live.iter().any(|l| &l.node_id == id));
    for id in live {
        let Some(state) = chitchat.node_state(id) else {
            continue;
        };
        let beat = u64::from(state.heartbeat());
        let entry = heard.entry(id.node_id.clone()).or_insert((beat, now));
        if entry.0 != beat || *id == chitchat.self_chitchat_id() {
            *entry = (beat, now);
        }
    }
}

pub struct Cluster {
    handle: ChitchatHandle,
    view: watch::Receiver<View>,
    heard: Heard,
    refresher: tokio::task::JoinHandle<()>,
    gossip_interval: Duration,
}

/// Identifies all Wharf gossip; several cluster domains share one gossip
/// cluster (one secret), and `domain` is a member property.
const CLUSTER_ID: &str = "wharf";

impl Cluster {
    pub async fn join(
        opts: JoinOptions,
        info: &MemberInfo,
        transport: &dyn Transport,
    ) -> Result<Cluster, JoinError> {
        let chitchat_id =
            ChitchatId::new(opts.node_id.clone(), opts.generation, opts.advertise_addr);
        let failure_detector_config = FailureDetectorConfig {
            // chitchat's own default. With gossip every 200 ms it flags a
            // silent member in about two seconds; a threshold of 5 was faster
            // but raised false downs with 50+ members on a busy host (see
            // BENCHMARKS.md).
            phi_threshold: 8.0,
            initial_interval: opts.gossip_interval,
            max_interval: opts.gossip_interval * 10,
            dead_node_grace_period: opts.dead_member_grace,
            ..FailureDetectorConfig::default()
        };
        let config = ChitchatConfig {
            chitchat_id,
            cluster_id: CLUSTER_ID.to_string(),
            gossip_interval: opts.gossip_interval,
            listen_addr: opts.listen_addr,
            seed_nodes: opts.seeds.clone(),
            failure_detector_config,
            marked_for_deletion_grace_period: Duration::from_secs(3600),
            catchup_callback: None,
            extra_liveness_predicate: None,
        };
        let handle = spawn_chitchat(config, info.to_key_values(), transport)
            .await
            .map_err(|e| JoinError(format!("{e:#}")))?;
        let (tx, view) = watch::channel(Arc::new(Vec::new()));
        let chitchat = handle.chitchat();
        let me = opts.node_id.clone();
        let period = opts.gossip_interval / 2;
        let heard: Heard = Arc::default();
        let heard_by_refresher = heard.clone();
        let refresher = tokio::spawn(async move {
            let mut joined = false;
            loop {
                let mut members = {
                    let guard = chitchat.lock().await;
                    let live: Vec<&ChitchatId> = guard.live_nodes().collect();
                    note_heartbeats(&heard_by_refresher, &guard, &live);
                    live.into_iter()
                        .filter_map(|id| {
                            let state = guard.node_state(id)?;
                            match MemberInfo::from_key_values(state.key_values()) {
                                Ok(info) if info.state != MemberState::Left => Some(Member {
                                    node_id: id.node_id.clone(),
                                    generation: id.generation_id,
                                    gossip_addr: id.gossip_advertise_addr,
                                    info,
                                }),
                                Ok(_) => None,
                                Err(e) => {
                                    tracing::debug!(node = %id.node_id, error = %e, "ignoring a member with unreadable properties");
                                    None
                                }
                            }
                        })
                        .collect::<Vec<_>>()
                };
                members.sort_by(|a, b| a.node_id.cmp(&b.node_id));
                if !joined && members.iter().any(|m| m.node_id != me) {
                    joined = true;
                    tracing::info!(members = members.len(), "joined the cluster");
                }
                tx.send_if_modified(move |old| {
                    if **old == members {
                        return false;
                    }
                    log_changes(old, &members);
                    *old = Arc::new(members);
                    true
                });
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(period).await;
            }
        });
        Ok(Cluster {
            handle,
            view,
            heard,
            refresher,
            gossip_interval: opts.gossip_interval,
        })
    }

    /// The live members now (this one included).
    pub fn members(&self) -> View {
        self.view.borrow().clone()
    }

    /// How long ago each live member's heartbeat last advanced, by node id.
    pub fn last_heard(&self) -> BTreeMap<String, Duration> {
        let heard = self.heard.lock().expect("not poisoned");
        heard
            .iter()
            .map(|(id, (_, at))| (id.clone(), at.elapsed()))
            .collect()
    }

    /// A stream of views: `changed().await` resolves on every change.
    pub fn watch(&self) -> watch::Receiver<View> {
        self.view.clone()
    }

    /// Publishes a new value for one of this member's keys.
    pub async fn set(&self, key: &str, value: &str) {
        self.handle
            .with_chitchat(|c| c.self_node_state().set(key, value))
            .await;
    }

    pub async fn set_state(&self, state: MemberState) {
        self.set("state", state.as_str()).await;
    }

    /// Stops gossiping without a word, as a crashed member would; for
    /// failure-detection tests and benchmarks.
    pub fn kill(&self) {
        self.refresher.abort();
        let _ = self.handle.initiate_shutdown();
    }

    /// Publishes `left`, gives it a few gossip rounds to spread, and stops
    /// gossiping.
    pub async fn leave(&self) {
        self.set_state(MemberState::Left).await;
        tokio::time::sleep(self.gossip_interval * 3).await;
        self.kill();
    }
}

fn describe(m: &Member) -> String {
    format!(
        "{} role={} domain={} sub_domain={} state={} address={}",
        m.node_id,
        m.info.role,
        m.info.domain,
        m.info.sub_domain.as_deref().unwrap_or("-"),
        m.info.state,
        m.gossip_addr
    )
}

fn log_changes(old: &[Member], new: &[Member]) {
    let before: BTreeMap<(&str, u64), &Member> = old
        .iter()
        .map(|m| ((m.node_id.as_str(), m.generation), m))
        .collect();
    let after: BTreeMap<(&str, u64), &Member> = new
        .iter()
        .map(|m| ((m.node_id.as_str(), m.generation), m))
        .collect();
    for (k, m) in &after {
        match before.get(k) {
            None => tracing::info!(member = %describe(m), "member joined"),
            Some(o) if o.info.state != m.info.state => {
                tracing::info!(member = %describe(m), from = %o.info.state, "member changed state")
            }
            _ => {}
        }
    }
    for (k, m) in &before {
        if !after.contains_key(k) {
            tracing::info!(member = %describe(m), "member left");
        }
    }
}
