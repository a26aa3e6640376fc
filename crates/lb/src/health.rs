//! The active health check: each member's `/health/ready` on its status
//! listener, every `interval`. A member that fails it gets no new requests
//! until it passes again.

use crate::State;
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use wharf_config::HealthCheck;
use wharf_net::ShutdownSignal;

pub(crate) async fn run(state: Arc<State>, cfg: HealthCheck, mut shutdown: ShutdownSignal) {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut tick = tokio::time::interval(cfg.interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait() => return,
        }
        let backends: Vec<_> = state
            .pools
            .load()
            .values()
            .flat_map(|p| p.backends.iter().cloned())
            .collect();
        let checks = backends.into_iter().filter_map(|b| {
            let addr = b.status_addr.clone()?;
            let client = client.clone();
            Some(async move {
                let uri = format!("http://{addr}/health/ready");
                let ok = match uri.parse() {
                    Ok(uri) => matches!(
                        tokio::time::timeout(cfg.timeout, client.get(uri)).await,
                        Ok(Ok(r)) if r.status().is_success()
                    ),
                    Err(_) => false,
                };
                if b.set_healthy(ok) {
                    if ok {
                        tracing::info!(member = %b.id, "member passes its health check again");
                    } else {
                        tracing::warn!(member = %b.id, status = %addr, "member fails its health check; no new requests");
                    }
                }
            })
        });
        futures::future::join_all(checks).await;
    }
}
