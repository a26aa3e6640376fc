//! Turning the bytes of a `.wasm` file into a servable [`App`].

use crate::cache;
use crate::host::{Host, SUPPORTED_PACKAGES};
use crate::Runtime;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

/// A compiled application, ready to instantiate once per request.
pub struct App {
    /// The artifact name (file name without `.wasm`).
    pub name: String,
    /// The context path it is served under, e.g. `/hello` (or `/`).
    pub context: String,
    /// Hex sha256 of the component bytes.
    pub sha256: String,
    pub size: u64,
    /// Time spent compiling (or loading from the cache).
    pub compile_time: Duration,
    pub from_cache: bool,
    /// The limits this application runs under: its own where it set
    /// them, never above the node's.
    pub limits: EffectiveLimits,
    /// The limits it asked for.
    pub requested_limits: Limits,
    /// Requests answered, and how many of them with a 5xx, by this node
    /// since the app was loaded.
    pub stats: AppStats,
    pub(crate) pre: ProxyPre<Host>,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) label: Arc<str>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("name", &self.name)
            .field("context", &self.context)
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

/// Counters of one loaded application (relaxed atomics: cheap on the
/// request path, read now and then for the console).
#[derive(Debug, Default)]
pub struct AppStats {
    requests: std::sync::atomic::AtomicU64,
    errors: std::sync::atomic::AtomicU64,
}

impl AppStats {
    pub fn record(&self, status: u16) {
        use std::sync::atomic::Ordering::Relaxed;
        self.requests.fetch_add(1, Relaxed);
        if status >= 500 {
            self.errors.fetch_add(1, Relaxed);
        }
    }

    /// (requests, 5xx answers).
    pub fn get(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.requests.load(Relaxed), self.errors.load(Relaxed))
    }
}

/// Limits an application asks for, each at most the node's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub memory_limit: Option<u64>,
    pub request_timeout: Option<Duration>,
    pub max_instances: Option<u32>,
}

/// The limits an application really runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EffectiveLimits {
    pub memory_limit: u64,
    pub request_timeout: Duration,
    pub max_instances: u32,
}

/// Why an artifact was not deployed. The message is meant for the operator.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    #[error("the component does not export wasi:http/incoming-handler@0.2.x (its exports: {0})")]
    NoHandler(String),
    #[error("the component imports interfaces this node does not provide: {0}")]
    MissingImports(String),
    #[error("cannot prepare the component: {0}")]
    Link(String),
}

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Runtime {
    /// Validates and compiles `bytes` as the application `name` at `context`.
    ///
    /// Compiling is CPU-bound and can take a while for large components:
    /// call this from a blocking thread.
    pub fn load(&self, name: &str, context: &str, bytes: &[u8]) -> Result<App, LoadError> {
        self.load_with_limits(name, context, bytes, Limits::default())
    }

    /// [`Runtime::load`] with the application's own limits, each capped at
    /// the node's.
    pub fn load_with_limits(
        &self,
        name: &str,
        context: &str,
        bytes: &[u8],
        limits: Limits,
    ) -> Result<App, LoadError> {
        let c = &self.config;
        let requested_limits = limits;
        let limits = EffectiveLimits {
            memory_limit: limits
                .memory_limit
                .map_or(c.memory_limit, |m| m.min(c.memory_limit)),
            request_timeout: limits
                .request_timeout
                .map_or(c.request_timeout, |t| t.min(c.request_timeout)),
            max_instances: limits.max_instances.map_or(c.max_instances_per_app, |n| {
                n.clamp(1, c.max_instances_per_app)
            }),
        };
        let started = Instant::now();
        if wasmparser::Parser::is_core_wasm(bytes) {
            return Err(LoadError::NotAComponent(
                "this is a core module; wrap it into a component (wasm-tools component new)".into(),
            ));
        }
        if !wasmparser::Parser::is_component(bytes) {
            return Err(LoadError::NotAComponent(
                "the file does not start with the component header".into(),
            ));
        }
        let sha256 = sha256_hex(bytes);
        let compiled = cache::compile(&self.engine, &self.config.cache_dir, &sha256, bytes)
            .map_err(LoadError::NotAComponent)?;
        let component = compiled.component;
        let ty = component.component_type();

        let exports: Vec<String> = ty
            .exports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        if !exports
            .iter()
            .any(|n| n.starts_with("wasi:http/incoming-handler@0.2."))
        {
            let list = if exports.is_empty() {
                "none".to_string()
            } else {
                exports.join(", ")
            };
            return Err(LoadError::NoHandler(list));
        }
        let missing: Vec<String> = ty
            .imports(&self.engine)
            .filter(|(name, _)| !SUPPORTED_PACKAGES.iter().any(|p| name.starts_with(p)))
            .map(|(name, _)| name.to_string())
            .collect();
        if !missing.is_empty() {
            return Err(LoadError::MissingImports(missing.join(", ")));
        }
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let pre = ProxyPre::new(pre).map_err(|e| LoadError::Link(format!("{e:#}")))?;
        Ok(App {
            name: name.to_string(),
            context: context.to_string(),
            sha256,
            size: bytes.len() as u64,
            compile_time: started.elapsed(),
            from_cache: compiled.from_cache,
            pre,
            permits: Arc::new(Semaphore::new(limits.max_instances as usize)),
            limits,
            requested_limits,
            stats: AppStats::default(),
            label: Arc::from(name),
        })
    }
}
