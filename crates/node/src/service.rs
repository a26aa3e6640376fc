//! The application listeners' request path: route, run, account.

use crate::Node;
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use wharf_runtime::{Failure, ResponseBody, Scheme};

/// A response made by the node itself, with a whole body.
pub fn full_response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<ResponseBody> {
    let mut resp = Response::new(
        Full::new(body.into())
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A short plain-text response made by the node itself.
pub fn error_response(status: StatusCode, message: &str) -> Response<ResponseBody> {
    full_response(status, "text/plain; charset=utf-8", format!("{message}\n"))
}

fn failure_response(f: &Failure) -> Response<ResponseBody> {
    let mut resp = error_response(f.status(), &f.client_message());
    if *f == Failure::Busy {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

/// Whether `path` is `prefix` or below it.
fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

pub(crate) async fn handle(
    node: Arc<Node>,
    req: Request<Incoming>,
    scheme: Scheme,
    peer: SocketAddr,
) -> Response<ResponseBody> {
    let started = Instant::now();
    // Wharf's own paths first: no application can be deployed there.
    let path = req.uri().path();
    if under(path, "/api") {
        return crate::admin::handle(node, req, &scheme, peer).await;
    }
    if under(path, "/console") || under(path, "/carbon") {
        return crate::console::handle(node, req, &scheme, peer).await;
    }
    if path.starts_with(wharf_deploy::remote::SYNC_PREFIX) {
        return crate::sync::endpoint::handle(&node, &req, &scheme).await;
    }
    if matches!(scheme, Scheme::Http) && node.config.server.http.redirect_to_https {
        let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let location = node.urls.https_url(target);
        let mut resp = error_response(
            StatusCode::PERMANENT_REDIRECT,
            &format!("moved to {location}"),
        );
        if let Ok(v) = HeaderValue::from_str(&location) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        return resp;
    }

    // `/t/<domain>/…`: a tenant's applications, within its limits.
    if let Some((domain, rest)) = crate::tenants::split_tenant_path(req.uri().path()) {
        let tenant = node.tenants.load().by_domain(domain).cloned();
        let Some(tenant) = tenant else {
            node.metrics.request("-", "-", 404, started.elapsed());
            return error_response(StatusCode::NOT_FOUND, "no such tenant");
        };
        if !tenant.rate.try_acquire() {
            node.metrics
                .rate_limited
                .get_or_create(&crate::metrics::TenantLabel {
                    tenant: tenant.domain.clone(),
                })
                .inc();
            node.metrics
                .request(&tenant.domain, "-", 429, started.elapsed());
            let mut resp = error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "this tenant is over its request rate; try again shortly",
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return resp;
        }
        let app = node
            .apps
            .load()
            .tenant(tenant.id())
            .and_then(|t| t.table.route(rest).cloned());
        let Some(app) = app else {
            node.metrics
                .request(&tenant.domain, "-", 404, started.elapsed());
            return error_response(
                StatusCode::NOT_FOUND,
                "no application is deployed at this path",
            );
        };
        let resp = match node
            .runtime
            .handle_in(&app, req, scheme, &tenant.scope)
            .await
        {
            Ok(resp) => resp,
            Err(f) => failure_response(&f),
        };
        app.stats.record(resp.status().as_u16());
        node.metrics.request(
            &tenant.domain,
            &app.name,
            resp.status().as_u16(),
            started.elapsed(),
        );
        return resp;
    }

    let app = node.apps.load().route(req.uri().path()).cloned();
    let Some(app) = app else {
        node.metrics.request(
            crate::metrics::SUPER_TENANT_LABEL,
            "-",
            404,
            started.elapsed(),
        );
        return error_response(
            StatusCode::NOT_FOUND,
            "no application is deployed at this path",
        );
    };
    let resp = match node.runtime.handle(&app, req, scheme).await {
        Ok(resp) => resp,
        Err(f) => failure_response(&f),
    };
    app.stats.record(resp.status().as_u16());
    node.metrics.request(
        crate::metrics::SUPER_TENANT_LABEL,
        &app.name,
        resp.status().as_u16(),
        started.elapsed(),
    );
    resp
}
