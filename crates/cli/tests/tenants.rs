//! End to end, the seed's multi-tenant cluster: tenants created by the
//! super admin, each with its own admin, applications and revisions,
//! served under `/t/<tenant>/` through the load balancer, held to their own
//! limits, and routed by `tenant_range` to their own cluster.

use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;
use wharf_testkit::cluster::{ADMIN_PASSWORD, APP_HOST};
use wharf_testkit::{fixtures, wait_until_async, TestCluster, TestLb, TestNode, PATIENCE};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_wharf"))
}

/// A call to the admin API through the LB as `user`.
async fn call(
    c: &TestCluster,
    user: &str,
    password: &str,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> (u16, Value) {
    let mut r = c
        .admin_client()
        .request(method, c.api(path))
        .basic_auth(user, Some(password));
    if let Some(b) = body {
        r = r.body(b);
    }
    let r = r.send().await.expect("the admin API answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn create_tenant(c: &TestCluster, domain: &str, limits: Value) -> (u64, String) {
    let body = serde_json::to_vec(&json!({"domain": domain, "limits": limits})).unwrap();
    let (s, r) = call(
        c,
        "admin",
        ADMIN_PASSWORD,
        Method::POST,
        "/tenants",
        Some(body),
    )
    .await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["admin_user"], format!("admin@{domain}"));
    (
        r["tenant"]["id"].as_u64().unwrap(),
        r["admin_password"].as_str().unwrap().to_string(),
    )
}

/// Waits until GET `path` through the LB answers `status` (and `body`, if given).
async fn wait_get(c: &TestCluster, path: &str, status: u16, body: Option<&str>) {
    wait_until_async(
        &format!("{path} to answer {status} {body:?}"),
        PATIENCE,
        || async {
            let (s, b) = c.get(path).await?;
            (s == status && body.is_none_or(|want| b == want)).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_are_served_apart_and_their_admins_kept_apart() {
    let c = TestCluster::start(bin(), 1, "");
    c.wait_ready(1).await;
    let (a_id, a_pw) = create_tenant(&c, "a.example", json!({})).await;
    let (b_id, b_pw) = create_tenant(&c, "b.example", json!({"max_apps": 1})).await;
    assert_eq!((a_id, b_id), (1, 2));

    // Each tenant admin deploys at the same context, as does the super admin.
    let deploy = |user: &'static str, pw: String, text: &'static str| {
        let c = &c;
        async move {
            call(
                c,
                user,
                &pw,
                Method::POST,
                "/apps?context=/app",
                Some(fixtures::says(text)),
            )
            .await
        }
    };
    let (s, r) = deploy("admin@a.example", a_pw.clone(), "tenant a\n").await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["rollout"]["tenant"], "a.example");
    let (s, r) = deploy("admin@b.example", b_pw.clone(), "tenant b\n").await;
    assert_eq!(s, 201, "{r}");
    let (s, r) = deploy("admin", ADMIN_PASSWORD.to_string(), "super\n").await;
    assert_eq!(s, 201, "{r}");
    wait_get(&c, "/t/a.example/app", 200, Some("tenant a\n")).await;
    wait_get(&c, "/t/b.example/app/x", 200, Some("tenant b\n")).await;
    wait_get(&c, "/app", 200, Some("super\n")).await;
    // A tenant nobody created: 404 from the load balancer.
    let (s, b) = c.get("/t/nobody.example/app").await.unwrap();
    assert_eq!(s, 404, "{b}");

    // A second deploy for a: b's revision does not move.
    let (s, _) = deploy("admin@a.example", a_pw.clone(), "tenant a, again\n").await;
    assert_eq!(s, 201);
    let (_, b_apps) = call(&c, "admin@b.example", &b_pw, Method::GET, "/apps", None).await;
    assert_eq!(b_apps["revision"], 1, "{b_apps}");
    let (_, a_apps) = call(&c, "admin@a.example", &a_pw, Method::GET, "/apps", None).await;
    assert_eq!(a_apps["revision"], 2, "{a_apps}");
    wait_get(&c, "/t/a.example/app", 200, Some("tenant a, again\n")).await;
    assert_eq!(c.get("/t/b.example/app").await.unwrap().1, "tenant b\n");

    // A tenant admin cannot touch another tenant, nor manage tenants.
    for (m, path) in [
        (Method::GET, "/apps?tenant=b.example"),
        (Method::DELETE, "/apps?context=/app&tenant=b.example"),
        (Method::POST, "/revisions/1/rollback?tenant=b.example"),
        (Method::GET, "/tenants"),
        (Method::POST, "/tenants/b.example/deactivate"),
    ] {
        let (s, r) = call(&c, "admin@a.example", &a_pw, m.clone(), path, None).await;
        assert_eq!(s, 403, "{m} {path}: {r}");
    }
    c.manager.process.wait_for_line("denied", PATIENCE);
    assert_eq!(c.get("/t/b.example/app").await.unwrap().1, "tenant b\n");
    // The super admin may act for a tenant.
    let (s, r) = call(
        &c,
        "admin",
        ADMIN_PASSWORD,
        Method::GET,
        "/apps?tenant=b.example",
        None,
    )
    .await;
    assert_eq!((s, &r["apps"][0]["context"]), (200, &json!("/app")), "{r}");
    // b may have one application only.
    let (s, r) = call(
        &c,
        "admin@b.example",
        &b_pw,
        Method::POST,
        "/apps?context=/second",
        Some(fixtures::hello()),
    )
    .await;
    assert_eq!(s, 409, "{r}");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("at most 1 applications"),
        "{r}"
    );

    // Configuration values reach that tenant's applications only.
    let (s, _) = call(
        &c,
        "admin@a.example",
        &a_pw,
        Method::POST,
        "/apps?context=/env",
        Some(fixtures::env()),
    )
    .await;
    assert_eq!(s, 201);
    let (s, _) = call(
        &c,
        "admin",
        ADMIN_PASSWORD,
        Method::POST,
        "/apps?context=/env",
        Some(fixtures::env()),
    )
    .await;
    assert_eq!(s, 201);
    let cfg = serde_json::to_vec(&json!({"env": {"GREETING": "hello a"}})).unwrap();
    let (s, r) = call(
        &c,
        "admin@a.example",
        &a_pw,
        Method::PUT,
        "/tenants/a.example/config",
        Some(cfg),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    wait_until_async("a's configuration to reach its app", PATIENCE, || async {
        let (s, b) = c.get("/t/a.example/env").await?;
        (s == 200 && b.contains("GREETING=hello a\n")).then_some(())
    })
    .await;
    let (_, super_env) = c.get("/env").await.unwrap();
    assert!(!super_env.contains("GREETING"), "{super_env}");

    // Deactivated: not served, and its admin is refused; activated again: back.
    let (s, _) = call(
        &c,
        "admin",
        ADMIN_PASSWORD,
        Method::POST,
        "/tenants/a.example/deactivate",
        None,
    )
    .await;
    assert_eq!(s, 200);
    wait_get(&c, "/t/a.example/app", 404, None).await;
    let (s, _) = call(&c, "admin@a.example", &a_pw, Method::GET, "/apps", None).await;
    assert_eq!(s, 403);
    let (s, _) = call(
        &c,
        "admin",
        ADMIN_PASSWORD,
        Method::POST,
        "/tenants/a.example/activate",
        None,
    )
    .await;
    assert_eq!(s, 200);
    wait_get(&c, "/t/a.example/app", 200, Some("tenant a, again\n")).await;

    // Deleted: gone, its admin too, and its id is not given again.
    let (s, _) = call(
        &c,
        "admin",
        ADMIN_PASSWORD,
        Method::DELETE,
        "/tenants/b.example",
        None,
    )
    .await;
    assert_eq!(s, 204);
    wait_get(&c, "/t/b.example/app", 404, None).await;
    let (s, _) = call(&c, "admin@b.example", &b_pw, Method::GET, "/apps", None).await;
    assert_eq!(s, 401);
    let (c_id, _) = create_tenant(&c, "c.example", json!({})).await;
    assert_eq!(c_id, 3);
    let (_, all) = call(&c, "admin", ADMIN_PASSWORD, Method::GET, "/tenants", None).await;
    let domains: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["domain"].as_str().unwrap())
        .collect();
    assert_eq!(domains, ["a.example", "c.example"]);

    // The builtin repository keeps each tenant apart.
    let repo = c.manager.data_dir().join("repository");
    assert!(repo.join("1/HEAD").exists() && repo.join("0/HEAD").exists());
    assert!(
        repo.join("2/HEAD").exists(),
        "a deleted tenant's revisions stay"
    );

    // Worker metrics are labelled by tenant.
    let metrics = reqwest::get(c.workers[0].status_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("wharf_http_requests_total{")
                && l.contains("tenant=\"a.example\"")
                && l.contains("app=\"a.example/app\"")),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_noisy_tenant_is_held_to_its_own_limits() {
    let c = TestCluster::start(
        bin(),
        1,
        "[runtime]\nqueue_timeout_ms = 200\n[deployment_synchronizer]\nenabled = true\n",
    );
    c.wait_ready(1).await;
    let (_, noisy_pw) = create_tenant(
        &c,
        "noisy.example",
        json!({"max_instances": 1, "requests_per_second": 5}),
    )
    .await;
    let (_, quiet_pw) = create_tenant(&c, "quiet.example", json!({})).await;
    for (user, pw) in [
        ("admin@noisy.example", &noisy_pw),
        ("admin@quiet.example", &quiet_pw),
    ] {
        let (s, r) = call(
            &c,
            user,
            pw,
            Method::POST,
            "/apps?context=/sleepy",
            Some(fixtures::sleepy()),
        )
        .await;
        assert_eq!(s, 201, "{r}");
    }
    wait_get(&c, "/t/quiet.example/sleepy?ms=1", 200, None).await;
    wait_get(&c, "/t/noisy.example/sleepy?ms=1", 200, None).await;

    // The noisy tenant's only instance is busy with a long request.
    let long = {
        let url = c.lb.url("/t/noisy.example/sleepy?ms=20000");
        tokio::spawn(async move {
            reqwest::Client::new()
                .get(url)
                .header("host", APP_HOST)
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    let worker_metrics = c.workers[0].status_url("/metrics");
    let in_use = || async {
        let m = reqwest::get(&worker_metrics)
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        m.lines()
            .find(|l| {
                l.starts_with("wharf_instances_in_use{")
                    && l.contains("app=\"noisy.example/sleepy\"")
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    wait_until_async(
        "the noisy tenant's instance to be taken",
        PATIENCE,
        || async { (in_use().await? == 1.0).then_some(()) },
    )
    .await;
    // Its next request finds no instance: 503.
    let (s, _) = c.get("/t/noisy.example/sleepy?ms=1").await.unwrap();
    assert_eq!(s, 503);
    // The quiet tenant is served as ever, while the noisy one still holds
    // its instance.
    for _ in 0..20 {
        assert_eq!(
            c.get("/t/quiet.example/sleepy?ms=1").await.unwrap(),
            (200, "slept\n".to_string())
        );
    }
    assert_eq!(
        in_use().await,
        Some(1.0),
        "the noisy request was still running"
    );
    long.abort();

    // Over its request rate: 429 with Retry-After, and the quiet one is
    // untouched by it.
    let client = reqwest::Client::new();
    let mut limited = 0;
    for _ in 0..30 {
        let r = client
            .get(c.lb.url("/t/noisy.example/missing"))
            .header("host", APP_HOST)
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            assert_eq!(r.headers()["retry-after"], "1");
            limited += 1;
        }
        assert_eq!(c.get("/t/quiet.example/sleepy?ms=0").await.unwrap().0, 200);
    }
    let m = reqwest::get(&worker_metrics)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.lines()
            .any(|l| l.starts_with("wharf_tenant_rate_limited_total{tenant=\"noisy.example\"}")),
        "{m}"
    );
    assert!(limited > 0, "5 requests a second, 30 asked for");
}

/// A node of cluster domain `domain`, seeded with the LB, that assigns
/// tenant ids in `ids`.
fn node_of(lb: &TestLb, domain: &str, sub_domain: &str, ids: &str, worker: bool) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), wharf_testkit::TEST_SECRET).unwrap();
    let extra = format!(
        "[clustering]\nenabled = true\ndomain = \"{domain}\"\nlocal_member_host = \"127.0.0.1\"\nlocal_member_port = 0\n\
         members = [\"{}\"]\nsecret_file = \"secret\"\ngossip_interval_ms = 100\n\
         [clustering.properties]\nsubDomain = \"{sub_domain}\"\n\
         [deployment_synchronizer]\nenabled = true\n[tenants]\nids = \"{ids}\"\n",
        lb.wka()[0]
    );
    let args: &[&str] = if worker { &["--worker-node"] } else { &[] };
    TestNode::start_with_env(
        bin(),
        dir,
        "",
        &extra,
        args,
        &[("WHARF_ADMIN_PASSWORD", ADMIN_PASSWORD)],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_ranges_route_each_tenant_to_its_own_cluster() {
    let services = "services {\n  apps {\n    hosts as.test;\n    domains {\n\
        cluster.one { sub_domain worker; tenant_range 1-100; }\n\
        cluster.two { sub_domain worker; tenant_range 101-200; }\n\
      }\n  }\n}\n";
    let lb = TestLb::start(bin(), services, "", "", true);
    let m1 = node_of(&lb, "cluster.one", "mgt", "1-100", false);
    let w1 = node_of(&lb, "cluster.one", "worker", "1-100", true);
    let m2 = node_of(&lb, "cluster.two", "mgt", "101-200", false);
    let w2 = node_of(&lb, "cluster.two", "worker", "101-200", true);
    let api = |m: &TestNode| {
        (
            reqwest::Client::builder()
                .add_root_certificate(
                    reqwest::Certificate::from_pem(&m.generated_cert_pem()).unwrap(),
                )
                .build()
                .unwrap(),
            format!("https://localhost:{}/api/v1", m.https.port()),
        )
    };
    // Each manager sees its worker before deploying (else: 503, no worker).
    for (m, domain) in [(&m1, "cluster.one"), (&m2, "cluster.two")] {
        let url = m.status_url("/cluster/members");
        wait_until_async(
            &format!("{domain}'s manager to see its worker"),
            PATIENCE,
            || async {
                let members: Value = reqwest::get(&url).await.ok()?.json().await.ok()?;
                members
                    .as_array()?
                    .iter()
                    .any(|x| {
                        x["role"] == "worker" && x["domain"] == domain && x["state"] == "ready"
                    })
                    .then_some(())
            },
        )
        .await;
    }
    let mut ids = vec![];
    for (m, domain, text) in [
        (&m1, "one.example", "cluster one\n"),
        (&m2, "two.example", "cluster two\n"),
    ] {
        let (client, base) = api(m);
        let r: Value = client
            .post(format!("{base}/tenants"))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .json(&json!({"domain": domain}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(r["tenant"]["id"].as_u64().unwrap());
        let r = client
            .post(format!("{base}/apps?context=/who&tenant={domain}"))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .body(fixtures::says(text))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    assert_eq!(ids, [1, 101], "each manager assigns from its own range");
    let get = |path: &'static str| {
        let url = lb.url(path);
        async move {
            let r = reqwest::Client::new()
                .get(url)
                .header("host", APP_HOST)
                .send()
                .await
                .ok()?;
            Some((r.status().as_u16(), r.text().await.ok()?))
        }
    };
    wait_until_async(
        "each tenant to be served by its own cluster",
        PATIENCE,
        || async {
            let one = get("/t/one.example/who").await?;
            let two = get("/t/two.example/who").await?;
            (one == (200, "cluster one\n".into()) && two == (200, "cluster two\n".into()))
                .then_some(())
        },
    )
    .await;
    // Each cluster's worker serves only its own tenant.
    assert_eq!(
        reqwest::get(w1.url("/t/two.example/who"))
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        reqwest::get(w2.url("/t/one.example/who"))
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(get("/t/three.example/who").await.unwrap().0, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn svn_keeps_each_tenant_under_its_own_url() {
    assert!(
        wharf_testkit::svn_available(),
        "svn is needed (Debian: subversion)"
    );
    let server = wharf_testkit::SvnServer::start();
    let url = format!("{}/repos/as", server.url);
    let sync = format!(
        "[deployment_synchronizer]\nrepository_type = \"svn\"\nurl = \"{url}\"\nuser = \"{}\"\npassword = \"{}\"\n",
        server.user, server.password
    );
    let c = TestCluster::start(bin(), 1, &sync);
    c.wait_ready(1).await;
    let (id, pw) = create_tenant(&c, "svn.example", json!({})).await;
    let (s, r) = call(
        &c,
        "admin@svn.example",
        &pw,
        Method::POST,
        "/apps?context=/app",
        Some(fixtures::says("tenant\n")),
    )
    .await;
    assert_eq!(s, 201, "{r}");
    let (s, r) = call(
        &c,
        "admin",
        ADMIN_PASSWORD,
        Method::POST,
        "/apps?context=/app",
        Some(fixtures::says("super\n")),
    )
    .await;
    assert_eq!(s, 201, "{r}");
    wait_get(&c, "/t/svn.example/app", 200, Some("tenant\n")).await;
    wait_get(&c, "/app", 200, Some("super\n")).await;
    let list = server.svn(&["list", "-R", &url]);
    assert!(
        list.lines().any(|l| l == format!("{id}/webapps/app.wasm")),
        "{list}"
    );
    assert!(list.lines().any(|l| l == "0/webapps/app.wasm"), "{list}");
    let tenant_copy = server.svn(&["cat", &format!("{url}/{id}/manifest.json")]);
    assert!(tenant_copy.contains("admin@svn.example"), "{tenant_copy}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_manages_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let mgr = TestNode::start_with_env(
        bin(),
        dir,
        "",
        "[deployment_synchronizer]\nenabled = true\n",
        &[],
        &[("WHARF_ADMIN_PASSWORD", ADMIN_PASSWORD)],
    );
    let manager = format!("https://127.0.0.1:{}", mgr.https.port());
    let cert = mgr.data_dir().join("tls/cert.pem");
    let wharf = |args: &[&str]| {
        let o = std::process::Command::new(bin())
            .args(args)
            .args(["--manager", &manager, "--ca-cert", cert.to_str().unwrap()])
            .env("WHARF_PASSWORD", ADMIN_PASSWORD)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (o.status.success(), text)
    };
    let (ok, out) = wharf(&["tenant", "create", "cli.example", "--max-apps", "3"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("created tenant cli.example (id 1)") && out.contains("admin@cli.example"),
        "{out}"
    );
    let password = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("password (shown only this once): "))
        .expect("the made-up password")
        .to_string();
    let (ok, out) = wharf(&["tenant", "list"]);
    assert!(
        ok && out.contains("cli.example") && out.contains("active") && out.contains("apps≤3"),
        "{out}"
    );
    let (ok, out) = wharf(&[
        "tenant",
        "limits",
        "cli.example",
        "--requests-per-second",
        "7",
    ]);
    assert!(
        ok && out.contains("rps≤7") && out.contains("apps≤3"),
        "{out}"
    );
    let (ok, out) = wharf(&["tenant", "create", "cli.example"]);
    assert!(!ok && out.contains("exists already"), "{out}");
    let (ok, out) = wharf(&["tenant", "create", "Not A Domain"]);
    assert!(!ok && out.contains("not a domain name"), "{out}");

    // The tenant admin deploys with the CLI, as their own tenant.
    let app = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(app.path(), fixtures::says("cli tenant\n")).unwrap();
    let o = std::process::Command::new(bin())
        .args(["deploy", app.path().to_str().unwrap(), "--context", "/app"])
        .args([
            "--manager",
            &manager,
            "--ca-cert",
            cert.to_str().unwrap(),
            "--user",
            "admin@cli.example",
        ])
        .env("WHARF_PASSWORD", &password)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let served = reqwest::get(mgr.url("/t/cli.example/app"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(served, "cli tenant\n");

    let (ok, out) = wharf(&["tenant", "deactivate", "cli.example"]);
    assert!(ok && out.contains("inactive"), "{out}");
    assert_eq!(
        reqwest::get(mgr.url("/t/cli.example/app"))
            .await
            .unwrap()
            .status(),
        404
    );
    let (ok, out) = wharf(&["tenant", "delete", "cli.example"]);
    assert!(ok && out.contains("deleted tenant cli.example"), "{out}");
    let (ok, out) = wharf(&["tenant", "list", "--json"]);
    assert!(ok && out.trim() == "[]", "{out}");
}
