//! Wharf's WebAssembly host: compiles `wasi:http/proxy` components on
//! wasmtime and runs a fresh instance of one for every request, within limits.
//!
//! The node decides *which* application serves a request; this crate only
//! knows how to turn bytes into an [`App`] ([`Runtime::load`]) and an HTTP
//! request into a response from an instance of it ([`Runtime::handle`]).

mod cache;
mod engine;
mod host;
mod load;
pub mod metrics;
mod serve;

pub use load::{sha256_hex, App, AppStats, EffectiveLimits, Limits, LoadError};
pub use serve::{BoxError, Failure, ResponseBody, Scheme, Scope, CONTEXT_PATH_HEADER};

use engine::EpochTicker;
use host::Host;
use std::sync::Arc;
use tokio::sync::Semaphore;
use wasmtime::component::Linker;
use wasmtime::Engine;
use wharf_config::RuntimeConfig;

/// How often the epoch advances. The time limit is checked on each tick, and
/// a running guest yields to other tasks on each tick.
pub const EPOCH_TICK: std::time::Duration = std::time::Duration::from_millis(10);

/// The engine, the linker with every WASI interface we serve, and the
/// node-wide instance budget.
pub struct Runtime {
    engine: Engine,
    linker: Linker<Host>,
    config: RuntimeConfig,
    node_permits: Arc<Semaphore>,
    metrics: metrics::Metrics,
    _ticker: EpochTicker,
}

/// The runtime could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the WebAssembly runtime: {0}")]
pub struct SetupError(String);

impl Runtime {
    /// Builds the engine and linker and starts the epoch ticker. Metrics are
    /// registered in `registry` (under the `wharf` prefix the caller chose).
    pub fn new(
        config: &RuntimeConfig,
        registry: &mut prometheus_client::registry::Registry,
    ) -> Result<Runtime, SetupError> {
        let engine = engine::build(config).map_err(|e| SetupError(format!("{e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .and_then(|()| wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker))
            .map_err(|e| SetupError(format!("{e:#}")))?;
        std::fs::create_dir_all(&config.cache_dir).map_err(|e| {
            SetupError(format!(
                "cannot create cache directory {}: {e}",
                config.cache_dir.display()
            ))
        })?;
        let ticker = EpochTicker::start(engine.clone(), EPOCH_TICK);
        Ok(Runtime {
            node_permits: Arc::new(Semaphore::new(config.max_instances as usize)),
            metrics: metrics::Metrics::register(registry),
            engine,
            linker,
            config: config.clone(),
            _ticker: ticker,
        })
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    pub fn metrics(&self) -> &metrics::Metrics {
        &self.metrics
    }
}
