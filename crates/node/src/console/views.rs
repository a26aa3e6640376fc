//! The console's page frame and the small pieces every page uses. Markup
//! is written with maud, which escapes every value it is given.

use super::Session;
use crate::Node;
use maud::{html, Markup, DOCTYPE};

/// The pages of the navigation: (path, label).
const NAV: &[(&str, &str)] = &[
    ("/console/cluster", "Cluster"),
    ("/console/apps", "Applications"),
    ("/console/deploy", "Deploy"),
    ("/console/history", "History"),
    ("/console/tenants", "Tenants"),
];

/// A whole page: header with navigation, the user and sign-out, then `body`.
pub(crate) fn page(title: &str, session: Option<&Session>, current: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — Wharf console" }
                link rel="stylesheet" href="/console/static/console.css";
                script src="/console/static/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to the content" }
                header {
                    span.brand { "Wharf" }
                    @if let Some(s) = session {
                        nav aria-label="Console" {
                            @for (path, label) in NAV {
                                @if *path != "/console/tenants" || s.caller.tenant.is_none() {
                                    @if *path == current {
                                        a href=(path) aria-current="page" { (label) }
                                    } @else {
                                        a href=(path) { (label) }
                                    }
                                }
                            }
                        }
                        div.who {
                            span {
                                (s.caller.user)
                                @if let Some(t) = &s.caller.tenant { " (tenant " (t) ")" }
                            }
                            form.inline method="post" action="/console/logout" {
                                input type="hidden" name="csrf" value=(s.csrf);
                                button.secondary type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// An error box that screen readers announce.
pub(crate) fn alert(message: &str) -> Markup {
    html! { div.alert role="alert" tabindex="-1" { (message) } }
}

/// A confirmation of something done.
pub(crate) fn notice(message: &str) -> Markup {
    html! { div.notice role="status" { (message) } }
}

/// The state badge of a member, worker or tenant.
pub(crate) fn state(s: &str) -> Markup {
    html! { span class={"state " (s)} { (s) } }
}

/// Milliseconds since the epoch as a UTC date and time.
pub(crate) fn when(ms: u64) -> String {
    if ms == 0 {
        return "-".into();
    }
    wharf_proto::api::utc(ms)
}

/// A size in bytes, for people.
pub(crate) fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1 << 20)),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / f64::from(1 << 10)),
        b => format!("{b} B"),
    }
}

/// The tenant picker of the super admin (a tenant admin has one tenant):
/// a small GET form that reloads the page for the chosen tenant.
pub(crate) fn tenant_picker(
    node: &Node,
    session: &Session,
    action: &str,
    chosen: Option<&str>,
) -> Markup {
    if session.caller.tenant.is_some() {
        return html! {};
    }
    let mut domains: Vec<String> = node.tenants.load().settings().into_keys().collect();
    domains.sort();
    html! {
        form.row method="get" action=(action) {
            label.row for="tenant" { "Tenant" }
            select id="tenant" name="tenant" {
                option value="" selected[chosen.is_none()] { "super tenant" }
                @for d in &domains {
                    option value=(d) selected[chosen == Some(d.as_str())] { (d) }
                }
            }
            button.secondary type="submit" { "Show" }
        }
    }
}

/// `?tenant=…` for links that keep the tenant chosen.
pub(crate) fn tenant_query(tenant: Option<&str>) -> String {
    tenant
        .map(|t| serde_urlencoded::to_string([("tenant", t)]).unwrap_or_default())
        .unwrap_or_default()
}

/// A page with a `<noscript>` fallback that reloads it.
pub(crate) fn noscript_refresh(seconds: u32) -> Markup {
    html! { noscript { meta http-equiv="refresh" content=(seconds.to_string()); } }
}
