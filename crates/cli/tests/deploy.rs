//! End to end, the seed's management/worker split: applications are
//! deployed once through the manager's admin API (by way of the load
//! balancer's management host), committed to the repository, and checked
//! out and served by every worker; requests go through the LB's worker
//! host. Real processes, real sockets, real TLS.

use futures::StreamExt;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use wharf_testkit::cluster::ADMIN_PASSWORD;
use wharf_testkit::{fixtures, wait_until_async, TestCluster, TestNode, PATIENCE};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_wharf"))
}

/// GETs `path` through the LB in a loop on `concurrency` connections until
/// `stop`, at most `max` requests; returns every (status, body) seen.
fn load(
    c: &Arc<TestCluster>,
    path: &'static str,
    concurrency: usize,
    max: usize,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<(u16, String)>> {
    let c = c.clone();
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        let url = c.lb.url(path);
        let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        futures::stream::iter(0..max)
            .take_while(|_| {
                let go = !stop.load(Ordering::Relaxed);
                async move { go }
            })
            .map(|_| {
                let (client, url, sent) = (client.clone(), url.clone(), sent.clone());
                async move {
                    sent.fetch_add(1, Ordering::Relaxed);
                    match client
                        .get(&url)
                        .header("host", wharf_testkit::cluster::APP_HOST)
                        .send()
                        .await
                    {
                        Ok(r) => {
                            let s = r.status().as_u16();
                            (
                                s,
                                r.text()
                                    .await
                                    .unwrap_or_else(|e| format!("body error: {e}")),
                            )
                        }
                        Err(e) => (0, format!("request error: {e}")),
                    }
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await
    })
}

/// Requests the LB has answered for the `appserver` service so far.
async fn lb_requests(c: &TestCluster) -> u64 {
    let Ok(r) = reqwest::get(c.lb.status_url("/metrics")).await else {
        return 0;
    };
    r.text()
        .await
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            l.starts_with("wharf_lb_requests_total{") && l.contains("service=\"appserver\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Waits until the LB has answered `more` requests beyond `from`.
async fn wait_requests(c: &TestCluster, from: u64, more: u64) {
    wait_until_async("the load to be under way", PATIENCE, || async {
        (lb_requests(c).await >= from + more).then_some(())
    })
    .await;
}

fn failures(results: &[(u16, String)]) -> Vec<&(u16, String)> {
    results.iter().filter(|(s, _)| *s != 200).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_redeploy_rollback_and_a_killed_worker_fail_no_request() {
    let c = Arc::new(TestCluster::start(bin(), 2, ""));
    c.wait_ready(2).await;

    // Deploy through the manager (via the LB's management host): the call
    // waits until both workers serve it.
    let (status, r) = c.deploy("/hello", &fixtures::says("one\n")).await;
    assert_eq!(status, 201, "{r}");
    assert_eq!(r["revision"], 1);
    assert_eq!(r["rollout"]["complete"], true, "{r}");
    let serving: Vec<&serde_json::Value> =
        r["rollout"]["workers"].as_array().unwrap().iter().collect();
    assert_eq!(serving.len(), 2, "{r}");
    assert!(
        serving
            .iter()
            .all(|w| w["state"] == "serving" && w["revision"] == 1),
        "{r}"
    );
    // Served by the workers through the LB's worker host.
    assert_eq!(c.get("/hello/x").await.unwrap(), (200, "one\n".to_string()));

    // Redeploy under load: no request fails, and each is answered wholly
    // by one revision or the other.
    let stop = Arc::new(AtomicBool::new(false));
    let before = lb_requests(&c).await;
    let loop1 = load(&c, "/hello", 4, 20_000, stop.clone());
    wait_requests(&c, before, 20).await;
    let (status, r) = c.deploy("/hello", &fixtures::says("two\n")).await;
    assert_eq!(
        (status, &r["revision"]),
        (201, &serde_json::json!(2)),
        "{r}"
    );
    assert_eq!(r["rollout"]["complete"], true, "{r}");
    // Once the rollout is complete, every worker answers with the new one.
    for _ in 0..20 {
        assert_eq!(c.get("/hello").await.unwrap(), (200, "two\n".to_string()));
    }
    stop.store(true, Ordering::Relaxed);
    let results = loop1.await.unwrap();
    assert!(results.len() >= 20, "the load ran: {}", results.len());
    assert!(
        failures(&results).is_empty(),
        "failed: {:?}",
        failures(&results)
    );
    let bodies: BTreeSet<&str> = results.iter().map(|(_, b)| b.as_str()).collect();
    assert!(
        bodies.iter().all(|b| *b == "one\n" || *b == "two\n"),
        "{bodies:?}"
    );

    // Roll back to revision 1: a new revision 3 with revision 1's content.
    let (status, r) = c.call(reqwest::Method::POST, "/revisions/1/rollback").await;
    assert_eq!(status, 201, "{r}");
    assert_eq!(r["revision"], 3);
    assert_eq!(r["rollout"]["complete"], true, "{r}");
    assert_eq!(c.get("/hello").await.unwrap(), (200, "one\n".to_string()));
    let (_, history) = c.call(reqwest::Method::GET, "/revisions").await;
    let messages: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        ["rollback to revision 1", "deploy /hello", "deploy /hello"]
    );
    let (_, apps) = c.call(reqwest::Method::GET, "/apps").await;
    assert_eq!(apps["revision"], 3);
    let hello = &apps["apps"][0];
    assert_eq!(hello["context"], "/hello");
    assert_eq!(hello["deployed_by"], "admin");
    assert!(
        hello["workers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["serving"] == true && w["revision"] == 3),
        "{apps}"
    );

    // A worker SIGKILLed during 2000 GETs: the LB retries on the other,
    // and no GET fails.
    let stop = Arc::new(AtomicBool::new(false));
    let before = lb_requests(&c).await;
    let loop2 = load(&c, "/hello", 8, 2000, stop.clone());
    wait_requests(&c, before, 100).await;
    c.workers[0].process.signal("KILL");
    let results = loop2.await.unwrap();
    assert_eq!(results.len(), 2000);
    assert!(
        failures(&results).is_empty(),
        "failed: {:?}",
        failures(&results)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_api_refuses_bad_input_and_commits_nothing() {
    let c = TestCluster::start(
        bin(),
        1,
        "[admin]\nmax_upload_mb = 1\n[deployment_synchronizer]\nenabled = true\n",
    );
    c.wait_ready(1).await;
    let hello = fixtures::hello();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "/x",
            b"not wasm at all".to_vec(),
            422,
            "not a WebAssembly component",
        ),
        (
            "/x",
            wat::parse_str("(module)").unwrap(),
            422,
            "core module",
        ),
        (
            "/x",
            fixtures::no_handler(),
            422,
            "does not export wasi:http/incoming-handler",
        ),
        ("", hello.clone(), 400, "empty"),
        ("/a/../b", hello.clone(), 400, "\"..\" is not allowed"),
        ("/api", hello.clone(), 400, "reserved"),
        ("/console/x", hello.clone(), 400, "reserved"),
        (
            "/x",
            vec![0u8; 2 * 1024 * 1024],
            413,
            "larger than the 1 MiB",
        ),
        ("/x", vec![], 400, "body is empty"),
    ];
    for (context, body, want, says) in cases {
        let (status, r) = c.deploy(context, &body).await;
        assert_eq!(status, want, "{context:?}: {r}");
        let e = r["error"].as_str().unwrap_or_default();
        assert!(e.contains(says), "{context:?}: {e:?} should say {says:?}");
    }
    // Credentials: none, wrong, and a made-up token.
    let admin = c.admin_client();
    let r = admin.get(c.api("/apps")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let r = admin
        .post(c.api("/apps?context=/x"))
        .basic_auth("admin", Some("not the password"))
        .body(hello.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = admin
        .get(c.api("/apps"))
        .bearer_auth("f".repeat(64))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    c.manager
        .process
        .wait_for_line("failed admin login", PATIENCE);
    assert!(
        !c.manager
            .process
            .output()
            .iter()
            .any(|l| l.contains("not the password")),
        "a password reached the log"
    );
    // Nothing was committed.
    let (_, history) = c.call(reqwest::Method::GET, "/revisions").await;
    assert_eq!(history, serde_json::json!([]));
    // Unknown undeploys and rollbacks are 404s; bad numbers 400s.
    let (s, _) = c
        .call(reqwest::Method::DELETE, "/apps?context=/nothing")
        .await;
    assert_eq!(s, 404);
    let (s, _) = c.call(reqwest::Method::POST, "/revisions/7/rollback").await;
    assert_eq!(s, 404);
    let (s, _) = c.call(reqwest::Method::POST, "/revisions/x/rollback").await;
    assert_eq!(s, 400);

    // Login sessions: a token that works until logout.
    let r: serde_json::Value = admin
        .post(c.api("/login"))
        .json(&serde_json::json!({"user": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = r["token"].as_str().unwrap().to_string();
    let ok = admin
        .get(c.api("/apps"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let out = admin
        .post(c.api("/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    let after = admin
        .get(c.api("/apps"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);

    // Workers have no admin API; plain HTTP gets none either.
    let worker_api = format!(
        "https://127.0.0.1:{}/api/v1/apps",
        c.workers[0].https.port()
    );
    let r = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap()
        .get(worker_api)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("worker node"));
    let r = reqwest::get(c.manager.url("/api/v1/apps")).await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("HTTPS only"));
    // The OpenAPI document is served without credentials.
    let doc: serde_json::Value = admin
        .get(c.api("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.0.3");
    assert!(doc["paths"]["/apps"]["post"].is_object());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deploy_before_any_worker_is_an_error_and_late_workers_catch_up() {
    let mut c = TestCluster::start(bin(), 0, "");
    c.wait_ready(0).await;
    // The seed's step 12: the manager says no worker is there yet, but
    // keeps the revision.
    let (status, r) = c.deploy("/early", &fixtures::says("early\n")).await;
    assert_eq!(status, 503, "{r}");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("no worker node is in the cluster yet"),
        "{r}"
    );
    assert_eq!(r["revision"], 1);
    // The first worker that joins serves it.
    c.add_worker();
    c.wait_ready(1).await;
    c.wait_body("/early", "early\n").await;
    let (status, r) = c.deploy("/later", &fixtures::says("later\n")).await;
    assert_eq!(status, 201, "{r}");
    // A worker that joins later still catches up with everything.
    c.add_worker();
    c.wait_ready(2).await;
    let late = c.workers[1].url("/later");
    wait_until_async("the late worker to serve /later", PATIENCE, || async {
        let r = reqwest::get(&late).await.ok()?;
        (r.status() == 200 && r.text().await.ok()? == "later\n").then_some(())
    })
    .await;
    assert_eq!(
        reqwest::get(c.workers[1].url("/early"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "early\n"
    );
    c.workers[1]
        .process
        .wait_for_line("serving revision", PATIENCE);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_deploys_lists_rolls_back_and_undeploys() {
    let c = TestCluster::start(bin(), 1, "");
    c.wait_ready(1).await;
    let config = tempfile::tempdir().unwrap();
    let app = config.path().join("app.wasm");
    std::fs::write(&app, fixtures::says("from the cli\n")).unwrap();
    // The manager's own HTTPS listener and generated certificate (the LB's
    // management host is not in this machine's resolver).
    let manager = format!("https://127.0.0.1:{}", c.manager.https.port());
    let manager_cert = c.manager.data_dir().join("tls/cert.pem");
    let wharf = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(bin());
        cmd.args(args)
            .args([
                "--manager",
                &manager,
                "--ca-cert",
                manager_cert.to_str().unwrap(),
            ])
            .env("XDG_CONFIG_HOME", config.path())
            .env_remove("WHARF_PASSWORD");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    // Without credentials: refused, with what to do.
    let o = wharf(&["deploy", app.to_str().unwrap(), "--context", "/cli"], &[]);
    assert!(!o.status.success());
    assert!(text(&o).contains("wharf login"), "{}", text(&o));
    // `wharf login` keeps a session (0600) that later commands use.
    let mut login = std::process::Command::new(bin())
        .args([
            "login",
            "--password-stdin",
            "--manager",
            &manager,
            "--ca-cert",
            manager_cert.to_str().unwrap(),
        ])
        .env("XDG_CONFIG_HOME", config.path())
        .env_remove("WHARF_PASSWORD")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(login.stdin.take().unwrap(), "{ADMIN_PASSWORD}").unwrap();
    assert!(login.wait().unwrap().success());
    let saved = config.path().join("wharf/credentials.json");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&saved).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    assert!(!std::fs::read_to_string(&saved)
        .unwrap()
        .contains(ADMIN_PASSWORD));

    let o = wharf(&["deploy", app.to_str().unwrap(), "--context", "/cli"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("deployed /cli as revision 1"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("served by every worker"), "{}", text(&o));
    c.wait_body("/cli", "from the cli\n").await;

    std::fs::write(&app, fixtures::says("second\n")).unwrap();
    let o = wharf(&["deploy", app.to_str().unwrap(), "--context", "/cli"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    c.wait_body("/cli", "second\n").await;

    let o = wharf(&["apps", "list"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("revision 2") && out.contains("/cli") && out.contains("1/1 serving"),
        "{out}"
    );

    let o = wharf(&["apps", "rollback", "1"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("rolled back to revision 1 as revision 3"),
        "{}",
        text(&o)
    );
    c.wait_body("/cli", "from the cli\n").await;

    let o = wharf(&["apps", "history"], &[]);
    let out = text(&o);
    assert!(
        out.lines().filter(|l| l.contains("deploy /cli")).count() == 2,
        "{out}"
    );
    assert!(out.contains("(current)"), "{out}");

    // Credentials from the environment work without a session too.
    let o = wharf(
        &["apps", "undeploy", "--context", "/cli"],
        &[
            ("WHARF_PASSWORD", ADMIN_PASSWORD),
            ("XDG_CONFIG_HOME", "/nonexistent"),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    wait_until_async("/cli to be undeployed", PATIENCE, || async {
        let (s, _) = c.get("/cli").await?;
        (s == 404).then_some(())
    })
    .await;
    // A bad file is refused with the manager's reason.
    std::fs::write(&app, b"garbage").unwrap();
    let o = wharf(&["deploy", app.to_str().unwrap(), "--context", "/bad"], &[]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("not a WebAssembly component"),
        "{}",
        text(&o)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manager_killed_during_a_deploy_keeps_the_old_revision() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "[deployment_synchronizer]\nenabled = true\n";
    let env = [("WHARF_ADMIN_PASSWORD", ADMIN_PASSWORD)];
    let mgr = TestNode::start_with_env(bin(), dir, "", extra, &[], &env);
    let client = mgr.https_client();
    let api = format!("https://localhost:{}/api/v1", mgr.https.port());
    let r = client
        .post(format!("{api}/apps?context=/a"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .body(fixtures::says("old\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // An upload that never finishes: the manager dies in the middle of it.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    tx.send(Ok(vec![0u8; 64 * 1024])).await.unwrap();
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    let pending = tokio::spawn(
        client
            .post(format!("{api}/apps?context=/a"))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .header("content-length", (4 * 1024 * 1024).to_string())
            .body(reqwest::Body::wrap_stream(stream))
            .send(),
    );
    let mut mgr = mgr;
    mgr.process.signal("KILL");
    mgr.process.wait_exit(PATIENCE);
    drop(tx);
    let _ = pending.await;
    // Restarted on the same data: revision 1, whole, serving.
    let dir = mgr.dir;
    let mgr = TestNode::start_with_env(bin(), dir, "", extra, &[], &env);
    let url = mgr.url("/a");
    wait_until_async("the restarted manager to serve /a", PATIENCE, || async {
        let r = reqwest::get(&url).await.ok()?;
        (r.text().await.ok()? == "old\n").then_some(())
    })
    .await;
    let client = mgr.https_client();
    let history: serde_json::Value = client
        .get(format!(
            "https://localhost:{}/api/v1/revisions",
            mgr.https.port()
        ))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(history.as_array().unwrap().len(), 1, "{history}");
}

/// Deploy, redeploy, roll back: each served by every worker through the LB.
async fn deploy_and_roll_back(c: &TestCluster) {
    c.wait_ready(2).await;
    let (status, r) = c.deploy("/vcs", &fixtures::says("first\n")).await;
    assert_eq!(status, 201, "{r}");
    assert_eq!(r["rollout"]["complete"], true, "{r}");
    c.wait_body("/vcs", "first\n").await;
    let (status, r) = c.deploy("/vcs", &fixtures::says("second\n")).await;
    assert_eq!(
        (status, &r["revision"]),
        (201, &serde_json::json!(2)),
        "{r}"
    );
    assert_eq!(r["rollout"]["complete"], true, "{r}");
    for _ in 0..10 {
        assert_eq!(c.get("/vcs").await.unwrap(), (200, "second\n".to_string()));
    }
    let (status, r) = c.call(reqwest::Method::POST, "/revisions/1/rollback").await;
    assert_eq!(
        (status, &r["revision"]),
        (201, &serde_json::json!(3)),
        "{r}"
    );
    assert_eq!(r["rollout"]["complete"], true, "{r}");
    for _ in 0..10 {
        assert_eq!(c.get("/vcs").await.unwrap(), (200, "first\n".to_string()));
    }
    let (_, history) = c.call(reqwest::Method::GET, "/revisions").await;
    let revisions: Vec<u64> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["revision"].as_u64().unwrap())
        .collect();
    assert_eq!(revisions, [3, 2, 1]);
    assert_eq!(history[0]["author"], "admin");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_git_backend_deploys_and_rolls_back_through_a_bare_repository() {
    let repo = tempfile::tempdir().unwrap();
    let bare = repo.path().join("apps.git");
    git2::Repository::init_bare(&bare).unwrap();
    let sync = format!(
        "[deployment_synchronizer]\nrepository_type = \"git\"\nurl = \"{}\"\ncheck_interval_ms = 1000\n",
        bare.display()
    );
    let c = TestCluster::start(bin(), 2, &sync);
    deploy_and_roll_back(&c).await;
    // One commit per revision, by the admin, on main.
    let git = git2::Repository::open_bare(&bare).unwrap();
    let mut walk = git.revwalk().unwrap();
    walk.push_ref("refs/heads/main").unwrap();
    let commits: Vec<git2::Oid> = walk.map(|o| o.unwrap()).collect();
    assert_eq!(commits.len(), 3);
    let tip = git.find_commit(commits[0]).unwrap();
    assert_eq!(tip.author().name(), Some("admin"));
    assert!(tip.message().unwrap().starts_with("rollback to revision 1"));
    // Workers only read: nothing was pushed but the manager's commits.
    for w in &c.workers {
        assert!(w
            .process
            .output()
            .iter()
            .all(|l| !l.contains("committed to git")));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_svn_backend_deploys_and_rolls_back_through_svnserve() {
    assert!(
        wharf_testkit::svn_available(),
        "svn, svnadmin and svnserve are needed (Debian: subversion; ./scripts/test.sh installs it)"
    );
    let server = wharf_testkit::SvnServer::start();
    let sync = format!(
        "[deployment_synchronizer]\nrepository_type = \"svn\"\nurl = \"{}/repos/as\"\nuser = \"{}\"\npassword = \"{}\"\n\
         url_append_tenant_id = true\ncheck_interval_ms = 1000\n",
        server.url, server.user, server.password
    );
    let c = TestCluster::start(bin(), 2, &sync);
    deploy_and_roll_back(&c).await;
    // The seed's layout: SvnUrl + "/" + tenant id.
    let list = server.svn(&["list", "-R", &format!("{}/repos/as", server.url)]);
    assert!(list.lines().any(|l| l == "0/webapps/vcs.wasm"), "{list}");
    assert!(list.lines().any(|l| l == "0/manifest.json"), "{list}");
    // The password is in no member's log.
    for n in std::iter::once(&c.manager).chain(&c.workers) {
        assert!(n
            .process
            .output()
            .iter()
            .all(|l| !l.contains(&server.password)));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_passwd_changes_the_password_of_a_running_manager() {
    let dir = tempfile::tempdir().unwrap();
    let mgr = TestNode::start_with_env(
        bin(),
        dir,
        "",
        "[deployment_synchronizer]\nenabled = true\n",
        &[],
        &[],
    );
    // No password was given: one was made up and printed once, on stdout.
    let line = mgr.process.wait_for_line("shown only this once", PATIENCE);
    let first = line.rsplit(' ').next().unwrap().to_string();
    assert!(mgr
        .process
        .output()
        .iter()
        .filter(|l| l.contains(&first))
        .all(|l| l.contains("shown only this once")));
    let client = mgr.https_client();
    let apps = format!("https://localhost:{}/api/v1/apps", mgr.https.port());
    let status = |pw: String| {
        let (client, apps) = (client.clone(), apps.clone());
        async move {
            client
                .get(&apps)
                .basic_auth("admin", Some(pw))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status(first.clone()).await, 200);
    // `wharf admin passwd` on the manager's data directory.
    let mut p = std::process::Command::new(bin())
        .args(["admin", "passwd", "--password-stdin", "--config"])
        .arg(mgr.dir.path().join("wharf.toml"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(p.stdin.take().unwrap(), "a brand new admin password").unwrap();
    assert!(p.wait().unwrap().success());
    assert_eq!(status(first).await, 401, "the old password no longer works");
    assert_eq!(status("a brand new admin password".into()).await, 200);
    // Too short: refused, nothing changed.
    let mut p = std::process::Command::new(bin())
        .args(["admin", "passwd", "--password-stdin", "--config"])
        .arg(mgr.dir.path().join("wharf.toml"))
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(p.stdin.take().unwrap(), "short").unwrap();
    let out = p.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 12"));
    assert_eq!(status("a brand new admin password".into()).await, 200);
}
