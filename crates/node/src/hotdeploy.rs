//! The hot-deployment directory (`<data_dir>/deployment/server/webapps`):
//! a `.wasm` file that appears is deployed, one that changes is redeployed,
//! one that goes away is undeployed.
//!
//! The directory is scanned on a fixed period rather than watched: polling
//! works the same on every file system, and a file is only read once its
//! size and modification time have held still for one period, so a copy in
//! progress is never deployed half-written. Files present at start are
//! deployed at once. Hidden files (`.name`) are ignored, so writing to a
//! hidden temporary name and renaming it into place is the safe way to
//! deploy.

use crate::Node;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use wharf_net::ShutdownSignal;

/// What a scan saw of one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

#[derive(Default)]
struct FileState {
    /// The stamp seen by the previous scan.
    seen: Option<Stamp>,
    /// The stamp last acted on (deployed, or refused).
    handled: Option<Stamp>,
    /// The context this file is deployed at, if it is.
    context: Option<String>,
}

pub(crate) struct HotDeployer {
    node: Arc<Node>,
    dir: PathBuf,
    files: BTreeMap<String, FileState>,
}

impl HotDeployer {
    pub(crate) fn new(node: Arc<Node>) -> std::io::Result<HotDeployer> {
        let dir = node.config.server.webapps_dir();
        std::fs::create_dir_all(&dir)?;
        Ok(HotDeployer {
            node,
            dir,
            files: BTreeMap::new(),
        })
    }

    /// Deploys what is there now, then keeps scanning until shutdown.
    pub(crate) async fn run(mut self, mut shutdown: ShutdownSignal) {
        self.scan(true).await;
        self.node.mark_initial_deploy_done();
        let mut tick = tokio::time::interval(self.node.config.server.hot_deploy_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.scan(false).await,
                _ = shutdown.wait() => return,
            }
        }
    }

    async fn scan(&mut self, initial: bool) {
        let present = match list_wasm_files(&self.dir) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot read the hot-deployment directory");
                return;
            }
        };
        let gone: Vec<String> = self
            .files
            .keys()
            .filter(|n| !present.contains_key(*n))
            .cloned()
            .collect();
        for name in gone {
            if let Some(FileState {
                context: Some(context),
                ..
            }) = self.files.remove(&name)
            {
                self.node.undeploy(&context, &name);
            }
        }
        for (name, stamp) in present {
            let state = self.files.entry(name.clone()).or_default();
            let steady = initial || state.seen == Some(stamp);
            state.seen = Some(stamp);
            if !steady || state.handled == Some(stamp) {
                continue;
            }
            state.handled = Some(stamp);
            let path = self.dir.join(&name);
            let deployed = self.node.deploy_file(&path, &name).await;
            let state = self.files.get_mut(&name).expect("entry exists");
            if let Some(context) = deployed {
                state.context = Some(context);
            }
        }
    }
}

fn list_wasm_files(dir: &Path) -> std::io::Result<BTreeMap<String, Stamp>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') || !name.ends_with(".wasm") {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        out.insert(
            name,
            Stamp {
                len: meta.len(),
                modified: meta.modified().ok(),
            },
        );
    }
    Ok(out)
}

impl Node {
    /// Reads, validates and compiles one artifact file and swaps it into the
    /// table. Returns the context it now serves, or `None` if it was refused
    /// (the reason is logged; whatever served that context before still does).
    pub(crate) async fn deploy_file(self: &Arc<Self>, path: &Path, name: &str) -> Option<String> {
        let app_name = name.trim_end_matches(".wasm").to_string();
        let context = match crate::apps::context_for_file_name(name) {
            Ok(c) => c,
            Err(reason) => {
                tracing::error!(file = %path.display(), %reason, "not deploying: bad file name");
                self.metrics.deploy(&app_name, "failed");
                return None;
            }
        };
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "not deploying: cannot read the file");
                self.metrics.deploy(&app_name, "failed");
                return None;
            }
        };
        if let Some(current) = self.apps.load().super_table().and_then(|t| t.get(&context)) {
            if current.sha256 == wharf_runtime::sha256_hex(&bytes) {
                return Some(context);
            }
        }
        let started = Instant::now();
        let node = self.clone();
        let (n, c) = (app_name.clone(), context.clone());
        let loaded = tokio::task::spawn_blocking(move || node.runtime.load(&n, &c, &bytes)).await;
        match loaded {
            Ok(Ok(app)) => {
                let app = Arc::new(app);
                let replaced = self
                    .apps
                    .load()
                    .super_table()
                    .and_then(|t| t.get(&context))
                    .map(|a| a.sha256.clone());
                self.apps
                    .rcu(|s| s.map_super(|t| t.with(&context, app.clone())));
                self.metrics.deploy(&app.name, "deployed");
                self.metrics.apps.set(self.apps.load().len() as i64);
                tracing::info!(
                    app = %app.name,
                    context = %app.context,
                    sha256 = %app.sha256,
                    compile_ms = app.compile_time.as_millis() as u64,
                    cached = app.from_cache,
                    replaced = %replaced.as_deref().unwrap_or("-"),
                    total_ms = started.elapsed().as_millis() as u64,
                    "deployed application"
                );
                Some(context)
            }
            Ok(Err(e)) => {
                tracing::error!(file = %path.display(), reason = %e, "not deploying: bad artifact; the previous version, if any, keeps serving");
                self.metrics.deploy(&app_name, "failed");
                None
            }
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "not deploying: the compiler task failed");
                self.metrics.deploy(&app_name, "failed");
                None
            }
        }
    }

    pub(crate) fn undeploy(&self, context: &str, file: &str) {
        let Some(app) = self
            .apps
            .load()
            .super_table()
            .and_then(|t| t.get(context))
            .cloned()
        else {
            return;
        };
        self.apps.rcu(|s| s.map_super(|t| t.without(context)));
        self.metrics.deploy(&app.name, "undeployed");
        self.metrics.apps.set(self.apps.load().len() as i64);
        tracing::info!(app = %app.name, context = %context, sha256 = %app.sha256, file = %file, "undeployed application");
    }
}
