//! The console's pages: sign in and out, cluster, applications, deploy,
//! undeploy, history and rollback, rollout, tenants.

use super::views::{self, alert, notice, page, state, tenant_picker, tenant_query, when};
use super::{cookie, peer, same, set_cookie, Session, LOGIN_CSRF_COOKIE, SESSION_COOKIE};
use crate::admin::api::tenant_of;
use crate::admin::ops::{self, For};
use crate::admin::ApiError;
use crate::Node;
use axum::extract::{DefaultBodyLimit, Form, Multipart, Query, State};
use axum::http::{header, request::Parts, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use wharf_proto::api::{RolloutState, TenantLimitsPatch};

type Shared = State<Arc<Node>>;

pub(crate) fn router(node: Arc<Node>) -> Router {
    let upload_limit = node.config.admin.max_upload as usize + 64 * 1024;
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::to("/console/cluster") }),
        )
        .route(
            "/console/",
            get(|| async { Redirect::to("/console/cluster") }),
        )
        .route("/console/static/console.css", get(css))
        .route("/console/static/console.js", get(js))
        .route("/console/login", get(login_form).post(login))
        .route("/console/logout", post(logout))
        .route("/console/cluster", get(cluster))
        .route("/console/apps", get(apps))
        .route("/console/deploy", get(deploy_form).post(deploy))
        .route("/console/undeploy", get(undeploy_confirm).post(undeploy))
        .route("/console/history", get(history))
        .route("/console/rollback", get(rollback_confirm).post(rollback))
        .route("/console/rollout", get(rollout))
        .route("/console/tenants", get(tenants).post(tenant_create))
        .route("/console/tenants/state", post(tenant_state))
        .route(
            "/console/tenants/delete",
            get(tenant_delete_confirm).post(tenant_delete),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such console page") })
        .layer(DefaultBodyLimit::max(upload_limit))
        .with_state(node)
}

async fn css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        super::assets::CSS,
    )
}

async fn js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        super::assets::JS,
    )
}

/// An admin API error as a console page.
fn error_page(session: &Session, title: &str, current: &str, e: ApiError) -> Response {
    if e.status == StatusCode::UNAUTHORIZED {
        return Redirect::to("/console/login").into_response();
    }
    (
        e.status,
        Html(page(title, Some(session), current, alert(&e.message)).into_string()),
    )
        .into_response()
}

fn html_page(m: Markup) -> Response {
    Html(m.into_string()).into_response()
}

/// The tenant a page acts for, from `?tenant=` (empty: the super tenant).
fn target(node: &Node, s: &Session, tenant: Option<&str>) -> Result<For, ApiError> {
    tenant_of(node, &s.caller, tenant.filter(|t| !t.is_empty()))
}

fn random_token() -> String {
    let mut b = [0u8; 24];
    getrandom::fill(&mut b).expect("the system has randomness");
    hex::encode(b)
}

// ---- sign in, sign out -------------------------------------------------

#[derive(Debug, Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

fn login_page(csrf: &str, next: &str, error: Option<&str>) -> Markup {
    page(
        "Sign in",
        None,
        "",
        html! {
            @if let Some(e) = error { (alert(e)) }
            form.stack.panel method="post" action="/console/login" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="next" value=(next);
                label { "User"
                    span.hint { "admin, or admin@<tenant domain> for a tenant's administrator" }
                    input type="text" name="user" autocomplete="username" required autofocus;
                }
                label { "Password" input type="password" name="password" autocomplete="current-password" required; }
                div { button type="submit" { "Sign in" } }
            }
        },
    )
}

/// Only console paths may be returned to after signing in.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/console/") && !n.contains("//") => n.to_string(),
        _ => "/console/cluster".to_string(),
    }
}

async fn login_form(Query(q): Query<LoginQuery>) -> Response {
    let csrf = random_token();
    let mut resp = html_page(login_page(&csrf, &safe_next(q.next.as_deref()), None));
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LOGIN_CSRF_COOKIE, &csrf, 600),
    );
    resp
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    csrf: String,
    user: String,
    password: String,
    next: Option<String>,
}

async fn login(State(node): Shared, parts: Parts, Form(f): Form<LoginForm>) -> Response {
    let next = safe_next(f.next.as_deref());
    let fresh = random_token();
    let again = |status: StatusCode, message: &str| {
        let mut resp = (
            status,
            Html(login_page(&fresh, &next, Some(message)).into_string()),
        )
            .into_response();
        resp.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(LOGIN_CSRF_COOKIE, &fresh, 600),
        );
        resp
    };
    let expected = cookie(&parts, LOGIN_CSRF_COOKIE).unwrap_or("");
    if expected.is_empty() || !same(expected, &f.csrf) {
        return again(
            StatusCode::FORBIDDEN,
            "The sign-in form expired or did not come from this console; please sign in again.",
        );
    }
    let Some(auth) = node.admin.as_ref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match auth.login(&f.user, &f.password, peer(&parts)).await {
        Ok((caller, token)) => {
            if caller.tenant.is_some() {
                if let Err(e) = tenant_of(&node, &caller, None) {
                    auth.logout(&token);
                    return again(e.status, &e.message);
                }
            }
            let mut resp = Redirect::to(&next).into_response();
            let h = resp.headers_mut();
            h.append(
                header::SET_COOKIE,
                set_cookie(SESSION_COOKIE, &token, auth.ttl().as_secs()),
            );
            h.append(header::SET_COOKIE, set_cookie(LOGIN_CSRF_COOKIE, "", 0));
            resp
        }
        Err(crate::admin::auth::Denied::Unauthorized(_)) => {
            again(StatusCode::UNAUTHORIZED, "Wrong user name or password.")
        }
        Err(crate::admin::auth::Denied::TooManyAttempts(wait)) => again(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "Too many failed sign-ins; try again in {} s.",
                wait.as_secs().max(1)
            ),
        ),
    }
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(State(node): Shared, s: Session, Form(f): Form<CsrfForm>) -> Response {
    if let Some(r) = s.check_csrf(&f.csrf) {
        return r;
    }
    if let Some(auth) = node.admin.as_ref() {
        auth.logout(s.token());
    }
    let mut resp = Redirect::to("/console/login").into_response();
    resp.headers_mut()
        .append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", 0));
    resp
}

// ---- cluster ------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct FragmentQuery {
    #[serde(default)]
    fragment: Option<String>,
    tenant: Option<String>,
    revision: Option<u64>,
    message: Option<String>,
}

/// The members; a tenant admin sees the revisions of their tenant only.
fn members_section(node: &Node, s: &Session) -> Markup {
    let members = ops::members(node);
    let own: Option<String> = s
        .caller
        .tenant
        .as_ref()
        .and_then(|d| node.tenants.load().by_domain(d).map(|t| t.id().to_string()));
    let mut groups: BTreeMap<(String, String), Vec<&wharf_proto::api::MemberView>> =
        BTreeMap::new();
    for m in &members {
        groups
            .entry((
                m.domain.clone(),
                m.sub_domain.clone().unwrap_or_else(|| "-".into()),
            ))
            .or_default()
            .push(m);
    }
    let directory = node.tenants.load();
    html! {
        @if members.is_empty() {
            p.muted { "This manager is not in a cluster (clustering is disabled): it serves its applications itself." }
        }
        @for ((domain, sub), ms) in &groups {
            h2 { "Domain " code { (domain) } ", sub-domain " code { (sub) } }
            div.scroll {
                table {
                    thead { tr { th { "Member" } th { "Role" } th { "State" } th { "Revisions" } th { "Last heard" } } }
                    tbody {
                        @for m in ms {
                            tr {
                                td.mono { (m.node_id) }
                                td { (m.role) }
                                td { (state(&m.state)) }
                                td {
                                    @if m.revisions.is_empty() { span.muted { "-" } }
                                    @for (t, r) in m.revisions.iter().filter(|(t, _)| s.caller.tenant.is_none() || own.as_ref() == Some(*t)) {
                                        @let name = t.parse::<u32>().ok().and_then(|id| if id == 0 { Some("super".to_string()) } else { directory.by_id(id).map(|x| x.domain.clone()) }).unwrap_or_else(|| t.clone());
                                        span { (name) ": " (r) } " "
                                    }
                                }
                                td.num { @match m.last_heard_ms { Some(ms) => { (format!("{:.1} s ago", ms as f64 / 1000.0)) }, None => { "-" } } }
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn cluster(State(node): Shared, s: Session, Query(q): Query<FragmentQuery>) -> Response {
    if q.fragment.is_some() {
        return html_page(members_section(&node, &s));
    }
    html_page(page(
        "Cluster",
        Some(&s),
        "/console/cluster",
        html! {
            p.muted { "Members by cluster domain and sub-domain, as this manager sees them; refreshed every 2 seconds." }
            (views::noscript_refresh(5))
            section aria-live="polite" data-refresh="/console/cluster?fragment=1" { (members_section(&node, &s)) }
        },
    ))
}

// ---- applications ---------------------------------------------------------

/// Requests and 5xx answers of each application of `tenant`, summed over
/// the workers' gossip (or this node's own, without a cluster).
fn app_counts(node: &Node, tenant: u32) -> BTreeMap<String, (u64, u64)> {
    super::rates::counts(node)
        .into_iter()
        .filter(|((t, _), _)| *t == tenant)
        .map(|((_, context), c)| (context, c))
        .collect()
}

#[derive(Debug, Deserialize)]
struct TenantParam {
    tenant: Option<String>,
}

async fn apps(State(node): Shared, s: Session, Query(q): Query<TenantParam>) -> Response {
    let title = "Applications";
    let t = match target(&node, &s, q.tenant.as_deref()) {
        Ok(t) => t,
        Err(e) => return error_page(&s, title, "/console/apps", e),
    };
    let list = match ops::app_list(&node, &t).await {
        Ok(l) => l,
        Err(e) => return error_page(&s, title, "/console/apps", e),
    };
    let counts = app_counts(&node, t.id);
    let tq = tenant_query(t.name.as_deref());
    let prefix = t
        .name
        .as_ref()
        .map(|d| format!("/t/{d}"))
        .unwrap_or_default();
    html_page(page(
        title,
        Some(&s),
        "/console/apps",
        html! {
            (tenant_picker(&node, &s, "/console/apps", t.name.as_deref()))
            p {
                "Tenant " strong { (t.name.as_deref().unwrap_or("super tenant")) }
                " — current revision " strong { (list.revision) } ". "
                a href={"/console/deploy?" (tq)} { "Deploy an application" }
            }
            @if list.apps.is_empty() {
                p.muted { "Nothing is deployed yet." }
            } @else {
                div.scroll { table {
                    thead { tr {
                        th { "Context" } th { "Revision" } th { "Size" } th { "Deployed" }
                        th { "On each worker" } th { "Requests" }
                        th { "Req/s" br; span.muted { "last minute" } }
                        th { "5xx" br; span.muted { "last minute" } }
                        th { span.muted { "Actions" } }
                    } }
                    tbody {
                        @for a in &list.apps {
                            @let (req, _) = counts.get(&a.context).copied().unwrap_or((0, 0));
                            @let rate = node.rates.rate(t.id, &a.context);
                            tr {
                                td.mono { (prefix) (a.context) }
                                td.num { (list.revision) }
                                td.num { (views::size(a.size)) }
                                td { (when(a.deployed_at_ms)) br; span.muted { "by " (a.deployed_by) } }
                                td {
                                    @if a.workers.is_empty() { span.muted { "no worker" } }
                                    @for w in &a.workers {
                                        div { span.mono { (w.node_id) } " "
                                            @if w.serving { (state("serving")) } @else { (state("pending")) }
                                            span.muted { " revision " (w.revision) }
                                        }
                                    }
                                }
                                td.num { (req) }
                                td.num { @match rate { Some(r) => (format!("{:.1}", r.per_second)), None => "-" } }
                                td.num { @match rate.and_then(|r| r.error_share) { Some(e) => (format!("{:.1} %", e * 100.0)), None => "-" } }
                                td { a href={"/console/undeploy?" (query(&[("context", &a.context)])) "&" (tq)} { "Undeploy…" } }
                            }
                        }
                    }
                } }
            }
        },
    ))
}

/// A query string of `pairs`.
fn query(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

// ---- deploy -------------------------------------------------------------

fn deploy_page(
    node: &Node,
    s: &Session,
    tenant: Option<&str>,
    context: Option<&str>,
    error: Option<&str>,
) -> Markup {
    let max = node.config.admin.max_upload / (1024 * 1024);
    page(
        "Deploy",
        Some(s),
        "/console/deploy",
        html! {
            @if let Some(e) = error { (alert(e)) }
            form.stack.panel method="post" action="/console/deploy" enctype="multipart/form-data" data-upload {
                input type="hidden" name="csrf" value=(s.csrf);
                @if s.caller.tenant.is_none() {
                    label { "Tenant"
                        select name="tenant" {
                            option value="" selected[tenant.is_none()] { "super tenant" }
                            @for d in node.tenants.load().settings().keys() {
                                option value=(d) selected[tenant == Some(d.as_str())] { (d) }
                            }
                        }
                    }
                }
                label { "Component (.wasm)"
                    span.hint { "a wasi:http/proxy component, at most " (max) " MiB" }
                    input type="file" name="component" accept=".wasm,application/wasm" required;
                }
                label { "Context path"
                    span.hint { "where it is served, e.g. /hello (/ for the root)" }
                    input type="text" name="context" required placeholder="/hello" pattern="/.*" value=[context];
                }
                progress id="upload-progress" hidden max="1" value="0" { "uploading" }
                p id="upload-status" aria-live="polite" {}
                div { button type="submit" { "Deploy" } }
            }
        },
    )
}

async fn deploy_form(State(node): Shared, s: Session, Query(q): Query<TenantParam>) -> Response {
    let tenant = q.tenant.filter(|t| !t.is_empty());
    if let Err(e) = target(&node, &s, tenant.as_deref()) {
        return error_page(&s, "Deploy", "/console/deploy", e);
    }
    html_page(deploy_page(&node, &s, tenant.as_deref(), None, None))
}

/// Where a change leads: its rollout, with its message.
fn to_rollout(t: &For, r: &wharf_proto::api::ChangeResponse) -> Response {
    let mut q = vec![
        ("revision", r.revision.to_string()),
        ("message", r.message.clone()),
    ];
    if let Some(n) = &t.name {
        q.push(("tenant", n.clone()));
    }
    let query = serde_urlencoded::to_string(&q).unwrap_or_default();
    Redirect::to(&format!("/console/rollout?{query}")).into_response()
}

async fn deploy(State(node): Shared, s: Session, mut form: Multipart) -> Response {
    let (mut csrf, mut tenant, mut context, mut component) = (String::new(), None, None, None);
    let mut failed = None;
    loop {
        match form.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or("").to_string();
                match field.bytes().await {
                    Ok(b) => match name.as_str() {
                        "csrf" => csrf = String::from_utf8_lossy(&b).to_string(),
                        "tenant" => tenant = Some(String::from_utf8_lossy(&b).to_string()),
                        "context" => context = Some(String::from_utf8_lossy(&b).trim().to_string()),
                        "component" => component = Some(b),
                        _ => {}
                    },
                    Err(e) => {
                        failed = Some(if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                            format!(
                                "The component is larger than the {} MiB this manager accepts.",
                                node.config.admin.max_upload / (1024 * 1024)
                            )
                        } else {
                            format!("The upload failed: {}", e.body_text())
                        });
                        break;
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                failed = Some(format!("The upload failed: {}", e.body_text()));
                break;
            }
        }
    }
    let tenant = tenant.filter(|t| !t.is_empty());
    let again = |status: StatusCode, message: &str| {
        (
            status,
            Html(
                deploy_page(
                    &node,
                    &s,
                    tenant.as_deref(),
                    context.as_deref(),
                    Some(message),
                )
                .into_string(),
            ),
        )
            .into_response()
    };
    if let Some(m) = failed {
        return again(StatusCode::BAD_REQUEST, &m);
    }
    if let Some(r) = s.check_csrf(&csrf) {
        return r;
    }
    let t = match target(&node, &s, tenant.as_deref()) {
        Ok(t) => t,
        Err(e) => return again(e.status, &e.message),
    };
    let Some(context) = context.clone().filter(|c| !c.is_empty()) else {
        return again(
            StatusCode::BAD_REQUEST,
            "Give the context path to serve it at, e.g. /hello.",
        );
    };
    let Some(bytes) = component.filter(|b| !b.is_empty()) else {
        return again(
            StatusCode::BAD_REQUEST,
            "Choose the component (.wasm) to deploy.",
        );
    };
    match ops::deploy(
        &node,
        &s.caller,
        t.clone(),
        context,
        Default::default(),
        bytes,
        false,
    )
    .await
    {
        Ok((_, r)) => to_rollout(&t, &r),
        Err(e) => again(e.status, &e.message),
    }
}

// ---- undeploy, rollback (each with a confirmation page) -------------------

#[derive(Debug, Deserialize)]
struct ContextParam {
    context: String,
    tenant: Option<String>,
}

async fn undeploy_confirm(
    State(node): Shared,
    s: Session,
    Query(q): Query<ContextParam>,
) -> Response {
    let title = "Undeploy";
    let t = match target(&node, &s, q.tenant.as_deref()) {
        Ok(t) => t,
        Err(e) => return error_page(&s, title, "/console/apps", e),
    };
    html_page(page(
        title,
        Some(&s),
        "/console/apps",
        html! {
            div.panel {
                p { "Undeploy " code { (q.context) } " of "
                    strong { (t.name.as_deref().unwrap_or("the super tenant")) } "? "
                    "A new revision without it is made and rolled out to every worker; "
                    "the history keeps the old one, so it can be rolled back." }
                form.row method="post" action="/console/undeploy" {
                    input type="hidden" name="csrf" value=(s.csrf);
                    input type="hidden" name="context" value=(q.context);
                    input type="hidden" name="tenant" value=(t.name.as_deref().unwrap_or(""));
                    button.danger type="submit" { "Undeploy " (q.context) }
                    a.button.secondary href={"/console/apps?" (tenant_query(t.name.as_deref()))} { "Cancel" }
                }
            }
        },
    ))
}

#[derive(Debug, Deserialize)]
struct ContextForm {
    csrf: String,
    context: String,
    tenant: Option<String>,
}

async fn undeploy(State(node): Shared, s: Session, Form(f): Form<ContextForm>) -> Response {
    if let Some(r) = s.check_csrf(&f.csrf) {
        return r;
    }
    let result = match target(&node, &s, f.tenant.as_deref()) {
        Ok(t) => ops::undeploy(&node, &s.caller, t.clone(), f.context, false)
            .await
            .map(|(_, r)| to_rollout(&t, &r)),
        Err(e) => Err(e),
    };
    result.unwrap_or_else(|e| error_page(&s, "Undeploy", "/console/apps", e))
}

async fn history(State(node): Shared, s: Session, Query(q): Query<TenantParam>) -> Response {
    let title = "History";
    let t = match target(&node, &s, q.tenant.as_deref()) {
        Ok(t) => t,
        Err(e) => return error_page(&s, title, "/console/history", e),
    };
    let all = match ops::history(&node, &t).await {
        Ok(h) => h,
        Err(e) => return error_page(&s, title, "/console/history", e),
    };
    let tq = tenant_query(t.name.as_deref());
    html_page(page(
        title,
        Some(&s),
        "/console/history",
        html! {
            (tenant_picker(&node, &s, "/console/history", t.name.as_deref()))
            @if all.is_empty() { p.muted { "No revision yet." } }
            @else {
                div.scroll { table {
                    thead { tr { th { "Revision" } th { "When" } th { "Who" } th { "What" } th { "Applications" } th { span.muted { "Actions" } } } }
                    tbody {
                        @for r in &all {
                            tr {
                                td.num { (r.revision) @if r.current { " " (state("active")) } }
                                td { (when(r.created_at_ms)) }
                                td { (r.author) }
                                td { (r.message) }
                                td.mono { @for c in r.apps.keys() { (c) " " } }
                                td { @if !r.current {
                                    a href={"/console/rollback?revision=" (r.revision) "&" (tq)} { "Roll back to " (r.revision) "…" }
                                } }
                            }
                        }
                    }
                } }
            }
        },
    ))
}

#[derive(Debug, Deserialize)]
struct RevisionParam {
    revision: u64,
    tenant: Option<String>,
}

async fn rollback_confirm(
    State(node): Shared,
    s: Session,
    Query(q): Query<RevisionParam>,
) -> Response {
    let title = "Roll back";
    let t = match target(&node, &s, q.tenant.as_deref()) {
        Ok(t) => t,
        Err(e) => return error_page(&s, title, "/console/history", e),
    };
    html_page(page(
        title,
        Some(&s),
        "/console/history",
        html! {
            div.panel {
                p { "Roll " strong { (t.name.as_deref().unwrap_or("the super tenant")) }
                    " back to revision " strong { (q.revision) } "? "
                    "A new revision with revision " (q.revision) "'s applications is made and rolled out to every worker." }
                form.row method="post" action="/console/rollback" {
                    input type="hidden" name="csrf" value=(s.csrf);
                    input type="hidden" name="revision" value=(q.revision);
                    input type="hidden" name="tenant" value=(t.name.as_deref().unwrap_or(""));
                    button type="submit" { "Roll back to revision " (q.revision) }
                    a.button.secondary href={"/console/history?" (tenant_query(t.name.as_deref()))} { "Cancel" }
                }
            }
        },
    ))
}

#[derive(Debug, Deserialize)]
struct RevisionForm {
    csrf: String,
    revision: u64,
    tenant: Option<String>,
}

async fn rollback(State(node): Shared, s: Session, Form(f): Form<RevisionForm>) -> Response {
    if let Some(r) = s.check_csrf(&f.csrf) {
        return r;
    }
    let result = match target(&node, &s, f.tenant.as_deref()) {
        Ok(t) => ops::rollback(&node, &s.caller, t.clone(), f.revision, false)
            .await
            .map(|(_, r)| to_rollout(&t, &r)),
        Err(e) => Err(e),
    };
    result.unwrap_or_else(|e| error_page(&s, "Roll back", "/console/history", e))
}

// ---- rollout --------------------------------------------------------------

fn rollout_section(node: &Node, t: &For, revision: u64) -> Markup {
    let r = ops::rollout_of(node, t, revision);
    let no_cluster = node.cluster.get().is_none();
    html! {
        @if r.complete {
            (notice(&if no_cluster { format!("Revision {revision} is served (this manager has no workers; it serves it itself).") } else { format!("Every worker serves revision {revision}.") }))
        } @else if r.workers.is_empty() {
            div.alert role="alert" { "No worker node is in the cluster yet: revision " (revision) " is committed, and the first worker that joins will serve it." }
        } @else {
            p aria-live="polite" { "Rolling out revision " (revision) "…" }
        }
        @if !r.workers.is_empty() {
            div.scroll { table {
                thead { tr { th { "Worker" } th { "State" } th { "Serves revision" } th { "Problem" } } }
                tbody {
                    @for w in &r.workers {
                        tr {
                            td.mono { (w.node_id) }
                            td { (state(match w.state { RolloutState::Serving => "serving", RolloutState::Pending => "pending", RolloutState::Failed => "failed" })) }
                            td.num { (w.revision) }
                            td { (w.error.as_deref().unwrap_or("")) }
                        }
                    }
                }
            } }
        }
    }
}

async fn rollout(State(node): Shared, s: Session, Query(q): Query<FragmentQuery>) -> Response {
    let title = "Rollout";
    let t = match target(&node, &s, q.tenant.as_deref()) {
        Ok(t) => t,
        Err(e) => return error_page(&s, title, "/console/apps", e),
    };
    let Some(revision) = q.revision else {
        return Redirect::to("/console/apps").into_response();
    };
    if q.fragment.is_some() {
        return html_page(rollout_section(&node, &t, revision));
    }
    let tq = tenant_query(t.name.as_deref());
    let refresh = format!("/console/rollout?fragment=1&revision={revision}&{tq}");
    html_page(page(
        title,
        Some(&s),
        "/console/apps",
        html! {
            @if let Some(m) = &q.message { (notice(m)) }
            (views::noscript_refresh(3))
            section data-refresh=(refresh) { (rollout_section(&node, &t, revision)) }
            p { a href={"/console/apps?" (tq)} { "Back to the applications" } }
        },
    ))
}

// ---- tenants (the super admin's) -------------------------------------------

/// A refusal unless the super admin is signed in.
fn super_only(s: &Session) -> Option<Response> {
    if s.caller.tenant.is_some() {
        tracing::warn!(user = %s.caller.user, "denied: the tenants page is the super admin's");
        return Some(
            (
                StatusCode::FORBIDDEN,
                Html(
                    page(
                        "Tenants",
                        Some(s),
                        "",
                        alert("Tenants are managed by the super admin only."),
                    )
                    .into_string(),
                ),
            )
                .into_response(),
        );
    }
    None
}

fn tenants_page(node: &Node, s: &Session, top: Markup) -> Markup {
    let all = node
        .tenant_store
        .as_ref()
        .map(|st| st.list())
        .unwrap_or_default();
    let defaults = node.default_tenant_limits();
    page(
        "Tenants",
        Some(s),
        "/console/tenants",
        html! {
            (top)
            @if all.is_empty() { p.muted { "No tenant yet: everything belongs to the super tenant." } }
            @else {
                div.scroll { table {
                    thead { tr { th { "Id" } th { "Domain" } th { "State" } th { "Limits" } th { "Created" } th { span.muted { "Actions" } } } }
                    tbody {
                        @for t in &all {
                            @let l = t.limits.over(defaults);
                            tr {
                                td.num { (t.id) }
                                td.mono { (t.domain) }
                                td { (state(if t.active { "active" } else { "inactive" })) }
                                td { (l.max_apps) " apps, " (l.memory_limit_mb) " MiB, " (l.max_instances) " instances, "
                                     @if l.requests_per_second == 0 { "no rate limit" } @else { (l.requests_per_second) " req/s" } }
                                td { (when(t.created_at_ms)) }
                                td { div.row {
                                    form.inline method="post" action="/console/tenants/state" {
                                        input type="hidden" name="csrf" value=(s.csrf);
                                        input type="hidden" name="domain" value=(t.domain);
                                        @if t.active {
                                            input type="hidden" name="active" value="false";
                                            button.secondary type="submit" { "Deactivate" }
                                        } @else {
                                            input type="hidden" name="active" value="true";
                                            button.secondary type="submit" { "Activate" }
                                        }
                                    }
                                    a href={"/console/tenants/delete?" (query(&[("domain", &t.domain)]))} { "Delete…" }
                                } }
                            }
                        }
                    }
                } }
            }
            h2 { "Create a tenant" }
            form.stack.panel method="post" action="/console/tenants" {
                input type="hidden" name="csrf" value=(s.csrf);
                label { "Domain" span.hint { "e.g. example.com: its applications are served under /t/<domain>/" }
                    input type="text" name="domain" required; }
                label { "Administrator's password" span.hint { "at least 12 characters; leave empty to have one made up and shown once" }
                    input type="password" name="password" autocomplete="new-password"; }
                div { button type="submit" { "Create" } }
            }
        },
    )
}

async fn tenants(State(node): Shared, s: Session) -> Response {
    if let Some(r) = super_only(&s) {
        return r;
    }
    html_page(tenants_page(&node, &s, html! {}))
}

#[derive(Debug, Deserialize)]
struct CreateForm {
    csrf: String,
    domain: String,
    password: Option<String>,
}

/// Calls the admin API's tenant route `path` as the signed-in user.
async fn tenant_call(
    node: &Arc<Node>,
    s: &Session,
    method: http::Method,
    path: &str,
    body: Vec<u8>,
) -> Result<serde_json::Value, ApiError> {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {}", s.token()))
        .header(header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from(body))
        .expect("a request");
    let resp = crate::admin::call(node.clone(), req).await;
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    if status.is_success() {
        Ok(v)
    } else {
        Err(ApiError::new(
            status,
            v["error"]
                .as_str()
                .unwrap_or("the manager refused")
                .to_string(),
        ))
    }
}

async fn tenant_create(State(node): Shared, s: Session, Form(f): Form<CreateForm>) -> Response {
    if let Some(r) = super_only(&s).or_else(|| s.check_csrf(&f.csrf)) {
        return r;
    }
    let body = serde_json::to_vec(&wharf_proto::api::CreateTenant {
        domain: f.domain.trim().to_string(),
        password: f.password.filter(|p| !p.is_empty()),
        limits: TenantLimitsPatch::default(),
    })
    .expect("serializes");
    let top = match tenant_call(&node, &s, http::Method::POST, "/api/v1/tenants", body).await {
        Ok(v) => html! {
            (notice(&format!("Created tenant {} (id {}); its administrator is {}.", v["tenant"]["domain"].as_str().unwrap_or(""), v["tenant"]["id"], v["admin_user"].as_str().unwrap_or(""))))
            @if let Some(p) = v["admin_password"].as_str() {
                div.panel role="status" { "Its password, shown only this once: " code { (p) } }
            }
        },
        Err(e) => {
            return (
                e.status,
                Html(tenants_page(&node, &s, alert(&e.message)).into_string()),
            )
                .into_response();
        }
    };
    html_page(tenants_page(&node, &s, top))
}

#[derive(Debug, Deserialize)]
struct StateForm {
    csrf: String,
    domain: String,
    active: bool,
}

async fn tenant_state(State(node): Shared, s: Session, Form(f): Form<StateForm>) -> Response {
    if let Some(r) = super_only(&s).or_else(|| s.check_csrf(&f.csrf)) {
        return r;
    }
    if let Err(e) = wharf_proto::validate_tenant_domain(&f.domain) {
        return html_page(tenants_page(&node, &s, alert(&e)));
    }
    let action = if f.active { "activate" } else { "deactivate" };
    let path = format!("/api/v1/tenants/{}/{action}", f.domain);
    let top = match tenant_call(&node, &s, http::Method::POST, &path, vec![]).await {
        Ok(_) => notice(&format!(
            "Tenant {} is {}.",
            f.domain,
            if f.active {
                "active again"
            } else {
                "deactivated"
            }
        )),
        Err(e) => alert(&e.message),
    };
    html_page(tenants_page(&node, &s, top))
}

#[derive(Debug, Deserialize)]
struct DomainParam {
    domain: String,
}

async fn tenant_delete_confirm(s: Session, Query(q): Query<DomainParam>) -> Response {
    if let Some(r) = super_only(&s) {
        return r;
    }
    html_page(page(
        "Delete a tenant",
        Some(&s),
        "/console/tenants",
        html! {
            div.panel {
                p { "Delete tenant " strong { (q.domain) } "? Its applications stop being served and its administrator is removed. "
                    "Its id is never given again; its revisions stay in the repository." }
                form.row method="post" action="/console/tenants/delete" {
                    input type="hidden" name="csrf" value=(s.csrf);
                    input type="hidden" name="domain" value=(q.domain);
                    button.danger type="submit" { "Delete " (q.domain) }
                    a.button.secondary href="/console/tenants" { "Cancel" }
                }
            }
        },
    ))
}

#[derive(Debug, Deserialize)]
struct DomainForm {
    csrf: String,
    domain: String,
}

async fn tenant_delete(State(node): Shared, s: Session, Form(f): Form<DomainForm>) -> Response {
    if let Some(r) = super_only(&s).or_else(|| s.check_csrf(&f.csrf)) {
        return r;
    }
    if let Err(e) = wharf_proto::validate_tenant_domain(&f.domain) {
        return html_page(tenants_page(&node, &s, alert(&e)));
    }
    let path = format!("/api/v1/tenants/{}", f.domain);
    let top = match tenant_call(&node, &s, http::Method::DELETE, &path, vec![]).await {
        Ok(_) => notice(&format!("Tenant {} is deleted.", f.domain)),
        Err(e) => alert(&e.message),
    };
    html_page(tenants_page(&node, &s, top))
}
