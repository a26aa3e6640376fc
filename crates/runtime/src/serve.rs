//! One request: a fresh instance, limits enforced, the response streamed.

use crate::host::{Flags, Hooks, Host, Limiter, LogStream};
use crate::load::App;
use crate::metrics::AppLabel;
use crate::Runtime;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Limited};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use wasmtime::component::ResourceTable;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpView};

pub use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

/// The request header that tells an application the context path it is
/// deployed under (e.g. `/hello`). Any value a client sends is replaced.
pub const CONTEXT_PATH_HEADER: &str = "x-wharf-context-path";

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A response body streamed from an instance.
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// Why a request got no response from its application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No instance slot became free within the queue timeout.
    Busy,
    /// The declared body is larger than `max_request_body_bytes`.
    BodyTooLarge { limit: u64 },
    /// The request ran past `request_timeout_ms`.
    Timeout,
    /// The guest tried to grow memory past `memory_limit_mb`.
    OutOfMemory,
    /// The guest trapped (the detail is for the log only).
    Trap(String),
    /// The guest returned without sending a response.
    NoResponse,
    /// The guest answered with a `wasi:http` error code.
    ErrorCode(String),
}

impl Failure {
    /// The label used in metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Busy => "busy",
            Failure::BodyTooLarge { .. } => "body_too_large",
            Failure::Timeout => "timeout",
            Failure::OutOfMemory => "out_of_memory",
            Failure::Trap(_) => "trap",
            Failure::NoResponse => "no_response",
            Failure::ErrorCode(_) => "error_code",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Failure::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Failure::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Failure::Timeout => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short text for the client, without internals.
    pub fn client_message(&self) -> String {
        match self {
            Failure::Busy => "the application is busy; try again shortly".into(),
            Failure::BodyTooLarge { limit } => format!("request body larger than {limit} bytes"),
            Failure::Timeout => "the application did not finish in time".into(),
            Failure::OutOfMemory => "the application ran out of memory".into(),
            Failure::Trap(_) => "the application failed".into(),
            Failure::NoResponse => "the application sent no response".into(),
            Failure::ErrorCode(_) => "the application reported an error".into(),
        }
    }
}

async fn acquire(sem: &Arc<Semaphore>, wait: Duration) -> Option<OwnedSemaphorePermit> {
    if let Ok(p) = sem.clone().try_acquire_owned() {
        return Some(p);
    }
    tokio::time::timeout(wait, sem.clone().acquire_owned())
        .await
        .ok()?
        .ok()
}

/// Maps body errors to what `wasi:http` reports to the guest.
fn body_error(e: BoxError) -> wasmtime_wasi_http::Error {
    if e.is::<http_body_util::LengthLimitError>() {
        return wasmtime_wasi_http::Error::HttpRequestBodySize(None);
    }
    match e.downcast::<hyper::Error>() {
        Ok(e) => wasmtime_wasi_http::Error::Hyper(*e),
        Err(_) => wasmtime_wasi_http::Error::HttpProtocolError,
    }
}

/// What a request's tenant adds to its application's limits: a lower
/// memory cap, a tenant-wide instance budget, and configuration values.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    pub memory_limit: Option<u64>,
    pub permits: Option<Arc<Semaphore>>,
    pub env: Option<Arc<std::collections::BTreeMap<String, String>>>,
}

struct InstanceGuard(prometheus_client::metrics::gauge::Gauge);

impl Drop for InstanceGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Runtime {
    fn new_store(
        &self,
        app: &App,
        scope: &Scope,
        flags: &Arc<Flags>,
        deadline: Instant,
    ) -> Store<Host> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(LogStream {
            app: app.label.clone(),
            stream: "stdout",
        })
        .stderr(LogStream {
            app: app.label.clone(),
            stream: "stderr",
        });
        for (k, v) in &self.config.env {
            wasi.env(k, v);
        }
        for (k, v) in scope.env.iter().flat_map(|e| e.iter()) {
            wasi.env(k, v);
        }
        wasi.env("WHARF_APP_NAME", &app.name)
            .env("WHARF_CONTEXT_PATH", &app.context);
        let host = Host {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: Hooks {
                outgoing_http: self.config.outgoing_http,
            },
            limiter: Limiter {
                memory_limit: scope
                    .memory_limit
                    .map_or(app.limits.memory_limit, |m| m.min(app.limits.memory_limit))
                    as usize,
                flags: flags.clone(),
            },
        };
        let mut store = Store::new(&self.engine, host);
        store.limiter(|h| &mut h.limiter);
        store.set_epoch_deadline(1);
        let flags = flags.clone();
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Flags::set(&flags.timed_out);
                Ok(UpdateDeadline::Interrupt)
            } else {
                // Let other requests on this thread run, then check again.
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }

    /// Serves `req` with a fresh instance of `app`.
    ///
    /// The instance runs in its own task so that it can keep streaming the
    /// body after the headers are returned; its slot is held until it ends.
    /// Failures are logged and counted here; the caller turns them into a
    /// response with [`Failure::status`] and [`Failure::client_message`].
    pub async fn handle<B>(
        &self,
        app: &Arc<App>,
        req: Request<B>,
        scheme: Scheme,
    ) -> Result<Response<ResponseBody>, Failure>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        self.handle_in(app, req, scheme, &Scope::default()).await
    }

    /// [`Runtime::handle`] within a tenant's [`Scope`].
    pub async fn handle_in<B>(
        &self,
        app: &Arc<App>,
        req: Request<B>,
        scheme: Scheme,
        scope: &Scope,
    ) -> Result<Response<ResponseBody>, Failure>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let limit = self.config.max_request_body;
        let declared = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit) || req.body().size_hint().lower() > limit {
            return Err(Failure::BodyTooLarge { limit });
        }

        let wait = self.config.queue_timeout;
        let tenant_permit = match &scope.permits {
            Some(p) => match acquire(p, wait).await {
                Some(permit) => Some(permit),
                None => return Err(self.busy(app)),
            },
            None => None,
        };
        let (Some(node_permit), Some(app_permit)) = (
            acquire(&self.node_permits, wait).await,
            acquire(&app.permits, wait).await,
        ) else {
            return Err(self.busy(app));
        };

        let deadline = Instant::now() + app.limits.request_timeout;
        let flags = Arc::new(Flags::default());
        let mut store = self.new_store(app, scope, &flags, deadline);

        let (mut parts, body) = req.into_parts();
        parts.headers.insert(
            CONTEXT_PATH_HEADER,
            HeaderValue::from_str(&app.context).expect("context paths are valid header values"),
        );
        let body = Limited::new(body.map_err(Into::into), limit as usize).map_err(body_error);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let prepared = store
            .data_mut()
            .http()
            .new_incoming_request(scheme, Request::from_parts(parts, body))
            .and_then(|req| Ok((req, store.data_mut().http().new_response_outparam(tx)?)));
        let (wasi_req, out) = match prepared {
            Ok(v) => v,
            Err(e) => return Err(self.record(app, Failure::Trap(format!("{e:#}")))),
        };

        let pre = app.pre.clone();
        let gauge = self
            .metrics
            .instances
            .get_or_create(&AppLabel {
                app: app.name.clone(),
            })
            .clone();
        gauge.inc();
        let guard = InstanceGuard(gauge);
        let metrics = self.metrics.clone();
        let name = app.name.clone();
        let task = tokio::spawn(async move {
            let _held = (node_permit, app_permit, tenant_permit, guard);
            let run = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, wasi_req, out)
                    .await
            };
            let result = match tokio::time::timeout_at(deadline, run).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(classify(e, &flags)),
                Err(_) => Err(Failure::Timeout),
            };
            if let Err(f) = &result {
                log_failure(&name, f);
                metrics.guest_error(&name, f.kind());
            }
            result
        });

        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(Ok(resp))) => {
                Ok(resp.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed_unsync()))
            }
            Ok(Ok(Err(code))) => Err(self.record(app, Failure::ErrorCode(format!("{code:?}")))),
            Ok(Err(_)) => match task.await {
                Ok(Err(f)) => Err(f),
                Ok(Ok(())) => Err(self.record(app, Failure::NoResponse)),
                Err(join) => {
                    Err(self.record(app, Failure::Trap(format!("instance task failed: {join}"))))
                }
            },
            // The task hits the same deadline, records it and ends itself
            // within an epoch tick; wait for that so the failure is counted
            // before the client hears of it.
            Err(_) => match task.await {
                Ok(Err(f)) => Err(f),
                _ => Err(self.record(app, Failure::Timeout)),
            },
        }
    }

    fn busy(&self, app: &App) -> Failure {
        self.metrics
            .busy_rejections
            .get_or_create(&AppLabel {
                app: app.name.clone(),
            })
            .inc();
        tracing::warn!(app = %app.name, "no free instance slot; answering 503");
        Failure::Busy
    }

    fn record(&self, app: &App, f: Failure) -> Failure {
        log_failure(&app.name, &f);
        self.metrics.guest_error(&app.name, f.kind());
        f
    }
}

fn classify(e: wasmtime::Error, flags: &Flags) -> Failure {
    use std::sync::atomic::Ordering::Relaxed;
    if flags.out_of_memory.load(Relaxed) {
        Failure::OutOfMemory
    } else if flags.timed_out.load(Relaxed) {
        Failure::Timeout
    } else {
        Failure::Trap(format!("{e:#}"))
    }
}

fn log_failure(app: &str, f: &Failure) {
    match f {
        Failure::Trap(detail) | Failure::ErrorCode(detail) => {
            tracing::warn!(app, kind = f.kind(), detail = %detail, "application failed a request")
        }
        _ => tracing::warn!(app, kind = f.kind(), "application failed a request"),
    }
}
