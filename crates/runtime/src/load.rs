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
            permits: Arc::new(Semaphore::new(self.config.max_instances_per_app as usize)),
            label: Arc::from(name),
        })
    }
}
