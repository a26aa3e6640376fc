//! End to end: the real `wharf server` binary on port 0, real sockets,
//! real TLS, real components.

use std::path::Path;
use std::time::Duration;
use wharf_testkit::{fixtures, wait_until_async, TestNode, PATIENCE};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_wharf"))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn get(c: &reqwest::Client, url: &str) -> (u16, String) {
    match c.get(url).send().await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

/// Waits until `url` answers `status` and returns the body.
async fn wait_status(c: &reqwest::Client, url: &str, status: u16) -> String {
    wait_until_async(&format!("{url} to answer {status}"), PATIENCE, || async {
        let (s, body) = get(c, url).await;
        (s == status).then_some(body)
    })
    .await
}

/// Waits until `url` answers 200 with exactly `body`.
async fn wait_body(c: &reqwest::Client, url: &str, body: &str) {
    wait_until_async(&format!("{url} to answer {body:?}"), PATIENCE, || async {
        (get(c, url).await == (200, body.to_string())).then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn hot_deploy_redeploy_under_load_and_undeploy() {
    let node = TestNode::start(bin(), "", "");
    let c = client();
    assert_eq!(get(&c, &node.url("/hello")).await.0, 404);

    node.deploy("hello.wasm", &fixtures::hello());
    assert_eq!(
        wait_status(&c, &node.url("/hello"), 200).await,
        "hello from wasm\n"
    );
    assert_eq!(get(&c, &node.url("/hello/any/path?q=1")).await.0, 200);
    assert_eq!(get(&c, &node.url("/helloworld")).await.0, 404);
    let line = node.process.wait_for_line("deployed application", PATIENCE);
    let sha = wharf_runtime::sha256_hex(&fixtures::hello());
    for field in [
        "app=hello",
        "context=/hello",
        &format!("sha256={sha}"),
        "compile_ms=",
    ] {
        assert!(line.contains(field), "{field} missing from {line:?}");
    }

    // Replace the file while clients keep requesting: not one request fails,
    // and every answer is wholly one version or the other.
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (c, url) = (c.clone(), node.url("/hello"));
        workers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..150 {
                seen.push(get(&c, &url).await);
            }
            seen
        }));
    }
    wait_until_async("load to start", PATIENCE, || async {
        let m = reqwest::get(node.status_url("/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        m.lines()
            .find(|l| {
                l.starts_with(
                    "wharf_http_requests_total{tenant=\"super\",app=\"hello\",status=\"200\"}",
                )
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .filter(|n| *n >= 50.0)
    })
    .await;
    node.deploy("hello.wasm", &fixtures::hello_v2());
    let mut versions = std::collections::BTreeSet::new();
    for w in workers {
        for (status, body) in w.await.unwrap() {
            assert_eq!(status, 200, "a request failed during redeploy: {body}");
            assert!(
                body == "hello from wasm\n" || body == "version two\n",
                "mixed body {body:?}"
            );
            versions.insert(body);
        }
    }
    wait_body(&c, &node.url("/hello"), "version two\n").await;
    wait_until_async("the redeploy to be logged", PATIENCE, || async {
        (node
            .process
            .count_lines(&["deployed application", "app=hello"])
            >= 2)
            .then_some(())
    })
    .await;

    node.undeploy("hello.wasm");
    wait_status(&c, &node.url("/hello"), 404).await;
    let line = node
        .process
        .wait_for_line("undeployed application", PATIENCE);
    assert!(line.contains("context=/hello"), "{line}");
    assert!(!versions.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_artifacts_are_logged_and_the_previous_version_keeps_serving() {
    let node = TestNode::start(bin(), "", "");
    let c = client();
    node.deploy("app.wasm", &fixtures::hello());
    wait_status(&c, &node.url("/app"), 200).await;

    node.deploy("app.wasm", b"\0asm but not really");
    let line = node.process.wait_for_line("not deploying", PATIENCE);
    assert!(line.contains("app.wasm"), "the log names the file: {line}");
    node.deploy("app.wasm", &fixtures::no_handler());
    wait_until_async("the wrong-world refusal", PATIENCE, || async {
        node.process
            .output()
            .into_iter()
            .find(|l| l.contains("not deploying") && l.contains("incoming-handler"))
    })
    .await;
    assert_eq!(
        get(&c, &node.url("/app")).await,
        (200, "hello from wasm\n".to_string())
    );

    // A name that cannot be a context path is refused too; others deploy.
    node.deploy("bad name.wasm", &fixtures::hello());
    node.process.wait_for_line("bad file name", PATIENCE);
    node.deploy("ROOT.wasm", &fixtures::hello_v2());
    assert_eq!(
        wait_status(&c, &node.url("/anything/else"), 200).await,
        "version two\n"
    );
    assert_eq!(get(&c, &node.url("/app/x")).await.1, "hello from wasm\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn guest_failures_are_5xx_and_other_apps_keep_serving() {
    let node = TestNode::start(
        bin(),
        "",
        "[runtime]\nrequest_timeout_ms = 500\nmemory_limit_mb = 4\n",
    );
    let c = client();
    for (name, bytes) in [
        ("trap.wasm", fixtures::trap()),
        ("loop.wasm", fixtures::endless_loop()),
        ("hog.wasm", fixtures::memory_hog()),
        ("hello.wasm", fixtures::hello()),
        ("chatty.wasm", fixtures::chatty()),
    ] {
        node.deploy(name, &bytes);
    }
    wait_until_async("all five apps to deploy", PATIENCE, || async {
        (node.process.count_lines(&["deployed application"]) == 5).then_some(())
    })
    .await;
    wait_status(&c, &node.url("/chatty"), 200).await;
    let urls = ["/trap", "/loop", "/hog", "/hello"].map(|p| node.url(p));
    let (trap, looped, hog, hello) = tokio::join!(
        get(&c, &urls[0]),
        get(&c, &urls[1]),
        get(&c, &urls[2]),
        get(&c, &urls[3])
    );
    assert_eq!(trap, (500, "the application failed\n".to_string()));
    assert_eq!(looped.0, 504);
    assert_eq!(
        hog,
        (500, "the application ran out of memory\n".to_string())
    );
    assert_eq!(hello.0, 200);

    // Guest output lands in the node's log, tagged with the app.
    let out = node.process.wait_for_line("guest says to stdout", PATIENCE);
    assert!(
        out.contains("app=chatty") && out.contains("stream=\"stdout\"")
            || out.contains("stream=stdout"),
        "{out}"
    );
    let err = node.process.wait_for_line("guest says to stderr", PATIENCE);
    assert!(err.contains("app=chatty"), "{err}");

    let metrics = get(&c, &node.status_url("/metrics")).await.1;
    for needle in [
        "wharf_guest_errors_total{app=\"trap\",kind=\"trap\"} 1",
        "wharf_guest_errors_total{app=\"loop\",kind=\"timeout\"} 1",
        "wharf_guest_errors_total{app=\"hog\",kind=\"out_of_memory\"} 1",
        "wharf_http_requests_total{tenant=\"super\",app=\"trap\",status=\"500\"} 1",
        "wharf_http_request_duration_seconds_bucket{",
        "wharf_instances_in_use{app=\"hello\"} 0",
        "wharf_deploys_total{app=\"hello\",result=\"deployed\"} 1",
        "wharf_apps_deployed 5",
    ] {
        assert!(
            metrics.contains(needle),
            "{needle} missing from metrics:\n{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn https_with_a_generated_certificate_speaks_h1_and_h2() {
    let node = TestNode::start(bin(), "host_name = \"as.example.test\"\n", "");
    node.deploy("hello.wasm", &fixtures::hello());
    wait_status(&client(), &node.url("/hello"), 200).await;

    let cert = reqwest::Certificate::from_pem(&node.generated_cert_pem()).unwrap();
    let url = format!("https://as.example.test:{}/hello", node.https.port());
    for (h2, version) in [
        (false, reqwest::Version::HTTP_11),
        (true, reqwest::Version::HTTP_2),
    ] {
        let mut b = reqwest::Client::builder()
            .add_root_certificate(cert.clone())
            .resolve("as.example.test", node.https);
        if !h2 {
            b = b.http1_only();
        }
        let resp = b.build().unwrap().get(&url).send().await.unwrap();
        assert_eq!(resp.version(), version);
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.unwrap(), "hello from wasm\n");
    }
    // The certificate also covers localhost and 127.0.0.1.
    let ip = reqwest::Client::builder()
        .add_root_certificate(cert)
        .build()
        .unwrap();
    let resp = ip
        .get(format!("https://localhost:{}/hello", node.https.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Restarted on the same data directory, the node reuses its certificate.
    let before = node.generated_cert_pem();
    let TestNode { dir, process, .. } = node;
    drop(process);
    let again = TestNode::start_in(bin(), dir, "host_name = \"as.example.test\"\n", "", &[]);
    assert_eq!(again.generated_cert_pem(), before);
    // ...and its compiled code: no recompilation on restart.
    let line = again
        .process
        .wait_for_line("deployed application", PATIENCE);
    assert!(line.contains("cached=true"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn redirects_name_the_host_name_and_proxy_port() {
    let node = TestNode::start(bin(), "host_name = \"as.example.test\"\n", "");
    // The test config already has [server.http]; add the switch there by
    // restarting with an edited file.
    let TestNode { dir, process, .. } = node;
    drop(process);
    let cfg = dir.path().join("wharf.toml");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "[server.https]\n",
        "redirect_to_https = true\n[server.https]\nproxy_port = 8243\n",
    );
    std::fs::write(&cfg, &text).unwrap();
    let process = wharf_testkit::WharfProcess::start(
        bin(),
        &["server", "--config", cfg.to_str().unwrap()],
        &[],
        "wharf server",
    );
    let http = process.listening(PATIENCE)["http"];
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = c
        .get(format!("http://{http}/shop/cart?item=7"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 308);
    assert_eq!(
        resp.headers()["location"],
        "https://as.example.test:8243/shop/cart?item=7"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn health_reports_ready_and_metrics_are_served() {
    let node = TestNode::start(bin(), "", "");
    let c = client();
    assert_eq!(
        wait_status(&c, &node.status_url("/health/ready"), 200).await,
        "ready\n"
    );
    assert_eq!(get(&c, &node.status_url("/health/live")).await.0, 200);
    let (status, body) = get(&c, &node.status_url("/metrics")).await;
    assert_eq!(status, 200);
    assert!(body.contains("wharf_apps_deployed 0"), "{body}");
    assert_eq!(get(&c, &node.status_url("/nope")).await.0, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_requests_in_flight_then_exits_zero() {
    let mut node = TestNode::start(bin(), "shutdown_grace_ms = 20000\n", "");
    let c = client();
    node.deploy("sleepy.wasm", &fixtures::sleepy());
    wait_status(&c, &node.url("/sleepy?ms=1"), 200).await;

    let slow = tokio::spawn({
        let (c, url) = (c.clone(), node.url("/sleepy?ms=1500"));
        async move { get(&c, &url).await }
    });
    wait_until_async("the slow request to be running", PATIENCE, || async {
        let m = get(&c, &node.status_url("/metrics")).await.1;
        m.contains("wharf_instances_in_use{app=\"sleepy\"} 1")
            .then_some(())
    })
    .await;
    node.process.signal("TERM");
    assert_eq!(
        slow.await.unwrap(),
        (200, "slept\n".to_string()),
        "the in-flight request finished"
    );
    let code = tokio::task::spawn_blocking(move || node.process.wait_exit(PATIENCE))
        .await
        .unwrap();
    assert_eq!(code, Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_node_flag_sets_the_role() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start_in(bin(), dir, "", "", &["--worker-node"]);
    let line = node.process.wait_for_line("node listening", PATIENCE);
    assert!(line.contains("role=worker"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_embedded_example_deploys_and_learns_its_context_path() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start_in(bin(), dir, "", "", &["--deploy-example"]);
    let body = wait_status(&client(), &node.url("/greeter/some/where?x=1"), 200).await;
    assert_eq!(
        body,
        "Hello from Wharf!\nYou asked for /greeter/some/where?x=1\nThis application is deployed at /greeter\n"
    );
}
