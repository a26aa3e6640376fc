//! End to end: `wharf lb` in front of real nodes (separate processes, one
//! sealed cluster on loopback) and of plain test backends.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use wharf_testkit::backend::Backend;
use wharf_testkit::{fixtures, wait_until_async, TestLb, TestNode, PATIENCE};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_wharf"))
}

/// The seed's loadbalancer.conf entries, under `services` as it says.
const SEED_SERVICES: &str = "services {
appserver {
  domains{
     wso2.as.domain {
        hosts mgt.as.cloud-test.wso2.com;
        sub_domain mgt;
        tenant_range *;
     }
     wso2.as.domain {
        hosts as.cloud-test.wso2.com;
        sub_domain worker;
        tenant_range *;
     }
   }
}
}
";

const WORKER_HOST: &str = "as.cloud-test.wso2.com";
const MGT_HOST: &str = "mgt.as.cloud-test.wso2.com";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(16)
        .build()
        .unwrap()
}

async fn get(c: &reqwest::Client, lb: &TestLb, host: &str, path: &str) -> Option<(u16, String)> {
    let resp = c.get(lb.url(path)).header("host", host).send().await.ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.text().await.ok()?))
}

/// The LB's view of its pools (`/lb/routes`).
async fn routes(lb: &TestLb) -> serde_json::Value {
    let Ok(r) = reqwest::get(lb.status_url("/lb/routes")).await else {
        return serde_json::Value::Null;
    };
    r.json().await.unwrap_or(serde_json::Value::Null)
}

/// Waits until the pool of `sub_domain` has `live` members taking requests.
async fn wait_live(lb: &TestLb, sub_domain: &str, live: u64) {
    wait_until_async(
        &format!("{live} live members in sub-domain {sub_domain}"),
        PATIENCE,
        || async {
            let r = routes(lb).await;
            r.as_array()?
                .iter()
                .any(|p| p["sub_domain"] == sub_domain && p["live"] == live)
                .then_some(())
        },
    )
    .await;
}

/// Two workers of the LB's cluster, each with `app` deployed as `name`,
/// both taking requests through the LB and serving `path` directly.
async fn two_workers(lb: &TestLb, name: &str, app: &[u8], path: &str) -> (TestNode, TestNode) {
    let w1 = TestNode::clustered(bin(), "worker", &lb.wka(), true);
    let w2 = TestNode::clustered(bin(), "worker", &lb.wka(), true);
    for w in [&w1, &w2] {
        w.deploy(name, app);
    }
    wait_live(lb, "worker", 2).await;
    for w in [&w1, &w2] {
        let url = w.url(path);
        wait_until_async("the app on each worker", PATIENCE, || async {
            let r = reqwest::get(&url).await.ok()?;
            (r.status() == 200).then_some(())
        })
        .await;
    }
    (w1, w2)
}

async fn metrics(lb: &TestLb) -> String {
    reqwest::get(lb.status_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_by_host_to_mgt_and_worker_sub_domains() {
    let lb = TestLb::start(bin(), SEED_SERVICES, "", "", true);
    let mgr = TestNode::clustered(bin(), "mgt", &lb.wka(), false);
    let mut worker = TestNode::clustered(bin(), "worker", &lb.wka(), true);
    mgr.deploy("app.wasm", &fixtures::hello());
    worker.deploy("app.wasm", &fixtures::hello_v2());
    worker.deploy("echo.wasm", &fixtures::echo());
    wait_live(&lb, "mgt", 1).await;
    wait_live(&lb, "worker", 1).await;
    let c = client();

    // Host (case and port do not matter) picks the sub-domain.
    let (s, body) = wait_until_async("the manager's app through the LB", PATIENCE, || async {
        get(&c, &lb, "MGT.as.cloud-test.wso2.com:8280", "/app")
            .await
            .filter(|(s, _)| *s == 200)
    })
    .await;
    assert_eq!((s, body.as_str()), (200, "hello from wasm\n"));
    let (s, body) = wait_until_async("the worker's app through the LB", PATIENCE, || async {
        get(&c, &lb, WORKER_HOST, "/app")
            .await
            .filter(|(s, _)| *s == 200)
    })
    .await;
    assert_eq!((s, body.as_str()), (200, "version two\n"));

    // The member sees who the client is and what it asked for.
    let (s, _) = wait_until_async("the echo app", PATIENCE, || async {
        get(&c, &lb, WORKER_HOST, "/echo")
            .await
            .filter(|(s, _)| *s == 200)
    })
    .await;
    assert_eq!(s, 200);
    let resp = c
        .get(lb.url("/echo/x?y=1"))
        .header("host", WORKER_HOST)
        .header("x-forwarded-for", "203.0.113.7")
        .header("connection", "keep-alive, x-secret")
        .header("x-secret", "not for the member")
        .send()
        .await
        .unwrap();
    let h = resp.headers();
    assert_eq!(h["x-echo-path"], "/echo/x?y=1");
    // (wasi:http hides Host from applications; X-Forwarded-Host carries it.)
    assert_eq!(h["x-echo-h-x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(h["x-echo-h-x-forwarded-proto"], "http");
    assert_eq!(h["x-echo-h-x-forwarded-host"], WORKER_HOST);
    assert_eq!(
        h["x-echo-h-x-forwarded-port"],
        lb.http.port().to_string().as_str()
    );
    assert!(h["x-echo-h-forwarded"]
        .to_str()
        .unwrap()
        .ends_with(&format!("for=127.0.0.1;proto=http;host=\"{WORKER_HOST}\"")));
    assert!(h.get("x-echo-h-x-secret").is_none(), "{h:?}");
    assert!(h.get("x-echo-h-connection").is_none(), "{h:?}");

    // A host no service names: 404.
    let (s, body) = get(&c, &lb, "elsewhere.example.com", "/app").await.unwrap();
    assert_eq!(s, 404);
    assert!(body.contains("elsewhere.example.com"), "{body}");

    // The worker leaves: its sub-domain has no live member, so 503 with
    // Retry-After and a body naming domain and sub-domain, while the
    // manager's host still works.
    worker.process.signal("TERM");
    assert_eq!(worker.process.wait_exit(PATIENCE), Some(0));
    wait_live(&lb, "worker", 0).await;
    let resp = wait_until_async("a 503 for the worker host", PATIENCE, || async {
        let r = c
            .get(lb.url("/app"))
            .header("host", WORKER_HOST)
            .send()
            .await
            .ok()?;
        (r.status() == 503).then_some(r)
    })
    .await;
    assert!(resp.headers().contains_key("retry-after"));
    let body = resp.text().await.unwrap();
    assert!(
        body.contains("wso2.as.domain") && body.contains("worker"),
        "{body}"
    );
    let (s, _) = get(&c, &lb, MGT_HOST, "/app").await.unwrap();
    assert_eq!(s, 200);

    // Metrics and the access log say what happened.
    let m = metrics(&lb).await;
    for needle in [
        "wharf_lb_requests_total{service=\"appserver\",status=\"200\"}",
        "wharf_lb_requests_total{service=\"appserver\",status=\"503\"}",
        "wharf_lb_requests_total{service=\"-\",status=\"404\"}",
        "wharf_lb_live_members{domain=\"wso2.as.domain\",sub_domain=\"mgt\"} 1",
        "wharf_lb_request_duration_seconds_bucket",
    ] {
        assert!(m.contains(needle), "{needle} missing in:\n{m}");
    }
    let access = lb
        .process
        .wait_for_line("\"GET /echo/x?y=1 HTTP/1.1\" 200", PATIENCE);
    assert!(access.contains("127.0.0.1 - - ["), "{access}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_during_2000_gets_fails_none() {
    let lb = TestLb::start(bin(), SEED_SERVICES, "", "", true);
    // Both workers serve the app before the load starts.
    let (_w1, mut w2) = two_workers(&lb, "app.wasm", &fixtures::hello(), "/app").await;
    let c = client();

    const TOTAL: usize = 2000;
    let done = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut tasks = vec![];
    for _ in 0..8 {
        let (c, url, done, failures) = (c.clone(), lb.url("/app"), done.clone(), failures.clone());
        tasks.push(tokio::spawn(async move {
            while done.fetch_add(1, Ordering::SeqCst) < TOTAL {
                let r = c.get(&url).header("host", WORKER_HOST).send().await;
                let outcome = match r {
                    Ok(r) if r.status() == 200 => match r.text().await {
                        Ok(b) if b == "hello from wasm\n" => None,
                        other => Some(format!("body {other:?}")),
                    },
                    Ok(r) => Some(format!("status {}", r.status())),
                    Err(e) => Some(format!("error {e}")),
                };
                if let Some(f) = outcome {
                    failures.lock().unwrap().push(f);
                }
            }
        }));
    }
    // Kill a worker without a word a quarter of the way in.
    wait_until_async("500 requests done", PATIENCE, || async {
        (done.load(Ordering::SeqCst) >= 500).then_some(())
    })
    .await;
    w2.process.signal("KILL");
    let _ = w2.process.wait_exit(PATIENCE);
    for t in tasks {
        t.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    // The dead worker is gone from the pool (failure detection), and the
    // LB counted what it retried.
    wait_live(&lb, "worker", 1).await;
    let m = metrics(&lb).await;
    assert!(m.contains("wharf_lb_ejections_total"), "{m}");
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_echo_through_the_lb() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};
    let backend = Backend::start("ws").await;
    let services = format!(
        "services {{ chat {{ hosts ws.example.com; domains {{ static.domain {{ members 127.0.0.1:{}; }} }} }} }}",
        backend.addr.port()
    );
    let lb = TestLb::start(bin(), &services, "", "", false);
    let mut req = format!("ws://{}/ws", lb.http)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("host", "ws.example.com".parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.status(), 101);
    for text in ["hello", "through", "the load balancer"] {
        ws.send(Message::text(text)).await.unwrap();
        let back = ws.next().await.unwrap().unwrap();
        assert_eq!(back.into_text().unwrap().as_str(), text);
    }
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap().into_data().as_ref(),
        &[0u8, 1, 2, 255]
    );
    ws.close(None).await.unwrap();
}

/// A certificate for `names`, self-signed: (cert PEM, key PEM).
fn self_signed(names: &[&str]) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread")]
async fn https_picks_the_certificate_by_sni() {
    let backend = Backend::start("tls").await;
    let services = format!(
        "services {{ web {{ hosts secure.example.com, as.cloud-test.wso2.com; domains {{ d {{ members 127.0.0.1:{}; }} }} }} }}",
        backend.addr.port()
    );
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(&["secure.example.com"]);
    std::fs::write(certs.path().join("secure.pem"), &cert).unwrap();
    std::fs::write(certs.path().join("secure.key"), &key).unwrap();
    let tables = format!(
        "[lb.https]\nbind = \"127.0.0.1\"\nport = 0\n[[lb.https.certificates]]\nhosts = [\"secure.example.com\"]\ncert = {:?}\nkey = {:?}\n",
        certs.path().join("secure.pem"),
        certs.path().join("secure.key")
    );
    let lb = TestLb::start(bin(), &services, "", &tables, false);

    // Trusting only the per-host certificate: SNI secure.example.com works.
    let only = |pem: &[u8], host: &str| {
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(pem).unwrap())
            .resolve(host, lb.https)
            .build()
            .unwrap()
    };
    let port = lb.https.port();
    let c = only(cert.as_bytes(), "secure.example.com");
    let r = c
        .get(format!("https://secure.example.com:{port}/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2, "ALPN offers h2");
    let seen: serde_json::Value = r.json().await.unwrap();
    assert_eq!(seen["headers"]["x-forwarded-proto"], "https");
    assert_eq!(
        seen["headers"]["host"],
        format!("secure.example.com:{port}")
    );
    // The same client cannot reach the other host: it gets the generated
    // default certificate, which it does not trust.
    let c = only(cert.as_bytes(), "as.cloud-test.wso2.com");
    assert!(c
        .get(format!("https://as.cloud-test.wso2.com:{port}/x"))
        .send()
        .await
        .is_err());
    // Trusting the generated certificate, the other host works.
    let c = only(&lb.generated_cert_pem(), "as.cloud-test.wso2.com");
    let r = c
        .get(format!("https://as.cloud-test.wso2.com:{port}/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Sends raw bytes, returns everything the LB answers until it closes.
async fn raw(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn smuggling_attempts_are_refused_and_never_forwarded() {
    let backend = Backend::start("victim").await;
    let services = format!(
        "services {{ web {{ hosts web.example.com; domains {{ d {{ members 127.0.0.1:{}; }} }} }} }}",
        backend.addr.port()
    );
    let lb = TestLb::start(bin(), &services, "", "", false);
    let attempts: &[&[u8]] = &[
        // CL.TE and TE.CL
        b"POST / HTTP/1.1\r\nHost: web.example.com\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: web.example.com\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: web.example.com\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: web.example.com\r\n\r\n",
        // differing lengths
        b"POST / HTTP/1.1\r\nHost: web.example.com\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd",
        // an obfuscated Transfer-Encoding
        b"POST / HTTP/1.1\r\nHost: web.example.com\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: web.example.com\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        // bad chunking: not a hex size
        b"POST / HTTP/1.1\r\nHost: web.example.com\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    ];
    for a in attempts {
        let answer = raw(lb.http, a).await;
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{:?} got {answer:?}",
            String::from_utf8_lossy(a)
        );
        assert!(!answer.contains("smuggled"), "{answer}");
    }
    // Only the bad-chunking request (whose head is fine) may have started
    // towards the member; none of the others reached it.
    assert!(
        backend.hits() <= 1,
        "{} requests reached the member",
        backend.hits()
    );
    // An honest request on the same LB still works.
    let ok = raw(
        lb.http,
        b"GET /fine HTTP/1.1\r\nHost: web.example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
}

#[tokio::test(flavor = "multi_thread")]
async fn failover_affinity_and_reload() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    // A member nobody listens on: every attempt on it fails to connect.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let services = |affinity: bool, extra_host: &str| {
        format!(
            "services {{ web {{ hosts web.example.com{extra_host}; session_affinity {affinity}; session_timeout 60000;\n\
             domains {{ d {{ members 127.0.0.1:{dead_port}, 127.0.0.1:{}, 127.0.0.1:{}; }} }} }} }}",
            a.addr.port(),
            b.addr.port()
        )
    };
    let lb = TestLb::start(bin(), &services(false, ""), "", "", false);
    let c = client();
    let name = |v: &serde_json::Value| v["backend"].as_str().unwrap_or("").to_string();

    // Connect failures are retried on another member: nothing fails, and
    // both live members share the load.
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..30 {
        let r = c
            .get(lb.url("/"))
            .header("host", "web.example.com")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        *seen.entry(name(&r.json().await.unwrap())).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    let m = metrics(&lb).await;
    assert!(
        m.contains("wharf_lb_upstream_errors_total{domain=\"d\",sub_domain=\"\",kind=\"connect\"}"),
        "{m}"
    );
    assert!(m.contains("wharf_lb_retries_total"), "{m}");

    // Reload with affinity on and a new host: a client sticks to one member.
    std::fs::write(lb.services_path(), services(true, ", new.example.com")).unwrap();
    lb.process.signal("HUP");
    lb.process.wait_for_line("configuration reloaded", PATIENCE);
    let sticky = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let mut names = std::collections::BTreeSet::new();
    for _ in 0..10 {
        let r = sticky
            .get(lb.url("/"))
            .header("host", "new.example.com")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        names.insert(name(&r.json().await.unwrap()));
    }
    assert_eq!(names.len(), 1, "affinity broke: {names:?}");

    // A broken file is refused and the running configuration keeps serving.
    std::fs::write(lb.services_path(), "services { web { hosts x; ").unwrap();
    lb.process.signal("HUP");
    let refused = lb.process.wait_for_line("reload refused", PATIENCE);
    assert!(refused.contains("loadbalancer.conf:1:"), "{refused}");
    let r = c
        .get(lb.url("/"))
        .header("host", "new.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let m = metrics(&lb).await;
    assert!(
        m.contains("wharf_lb_config_reloads_total{result=\"refused\"} 1"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_requests_in_flight() {
    let lb = TestLb::start(bin(), SEED_SERVICES, "", "", true);
    let w = TestNode::clustered(bin(), "worker", &lb.wka(), true);
    w.deploy("sleepy.wasm", &fixtures::sleepy());
    wait_live(&lb, "worker", 1).await;
    let c = client();
    wait_until_async("the sleepy app", PATIENCE, || async {
        get(&c, &lb, WORKER_HOST, "/sleepy?ms=1")
            .await
            .filter(|(s, _)| *s == 200)
    })
    .await;
    let slow = {
        let (c, url) = (c.clone(), lb.url("/sleepy?ms=1500"));
        tokio::spawn(async move { c.get(url).header("host", WORKER_HOST).send().await })
    };
    // The request is in flight on the member before the LB is told to stop.
    wait_until_async("the request in flight", PATIENCE, || async {
        let r = routes(&lb).await;
        r.as_array()?
            .iter()
            .flat_map(|p| p["members"].as_array().cloned().unwrap_or_default())
            .any(|m| m["in_flight"] == 1)
            .then_some(())
    })
    .await;
    let mut lb = lb;
    lb.process.signal("TERM");
    let r = slow.await.unwrap().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "slept\n");
    assert_eq!(lb.process.wait_exit(PATIENCE), Some(0));
}

/// The pool members of `sub_domain` as the LB sees them.
async fn members_of(lb: &TestLb, sub_domain: &str) -> Vec<serde_json::Value> {
    let r = routes(lb).await;
    r.as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["sub_domain"] == sub_domain)
        .flat_map(|p| p["members"].as_array().cloned().unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_draining_worker_finishes_its_requests_and_gets_no_new_ones() {
    let lb = TestLb::start(
        bin(),
        SEED_SERVICES,
        "",
        "[lb.access_log]\nformat = \"json\"\n",
        true,
    );
    let (_w1, mut w2) = two_workers(&lb, "sleepy.wasm", &fixtures::sleepy(), "/sleepy?ms=1").await;
    let c = client();
    // Two slow requests: round robin puts one on each worker.
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let (c, url) = (c.clone(), lb.url("/sleepy?ms=3000"));
            tokio::spawn(async move { c.get(url).header("host", WORKER_HOST).send().await })
        })
        .collect();
    wait_until_async("a request in flight on each worker", PATIENCE, || async {
        let m = members_of(&lb, "worker").await;
        (m.len() == 2 && m.iter().all(|x| x["in_flight"] == 1)).then_some(())
    })
    .await;

    // w2 is told to stop: it drains, and the LB sees it draining.
    w2.process.signal("TERM");
    let draining = wait_until_async("w2 draining in the LB's view", PATIENCE, || async {
        let m = members_of(&lb, "worker").await;
        m.into_iter().find(|x| x["draining"] == true)
    })
    .await;
    let w2_id = draining["id"].as_str().unwrap().to_string();
    // New requests all go to w1 and succeed, while w2's finishes.
    for _ in 0..20 {
        let (s, body) = get(&c, &lb, WORKER_HOST, "/sleepy?ms=1").await.unwrap();
        assert_eq!((s, body.as_str()), (200, "slept\n"));
    }
    for r in slow {
        let r = r.await.unwrap().unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "slept\n");
    }
    assert_eq!(w2.process.wait_exit(PATIENCE), Some(0));
    // The access log names the member of each request.
    let fast = lb.process.count_lines(&["\"target\":\"/sleepy?ms=1\""]);
    assert_eq!(fast, 20);
    let on_w2 = lb.process.count_lines(&[
        "\"target\":\"/sleepy?ms=1\"",
        &format!("\"member\":\"{w2_id}\""),
    ]);
    assert_eq!(on_w2, 0, "the draining worker got new requests");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_active_health_check_takes_a_stuck_member_out() {
    let lb = TestLb::start(
        bin(),
        SEED_SERVICES,
        "",
        "[lb.health_check]\nenabled = true\ninterval_ms = 100\ntimeout_ms = 300\n",
        true,
    );
    let w = TestNode::clustered(bin(), "worker", &lb.wka(), true);
    wait_live(&lb, "worker", 1).await;
    // A frozen process answers nothing, neither its health check nor gossip.
    w.process.signal("STOP");
    lb.process
        .wait_for_line("member fails its health check", PATIENCE);
    w.process.signal("CONT");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_lb_on_the_same_port_is_refused() {
    let lb = TestLb::start(bin(), SEED_SERVICES, "", "", false);
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("lb.toml");
    std::fs::write(
        &toml,
        format!(
            "[lb]\ndata_dir = \"data\"\n[lb.http]\nbind = \"127.0.0.1\"\nport = {}\n[lb.https]\nport = 0\n[lb.status]\nport = 0\n[clustering]\nenabled = false\n",
            lb.http.port()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .args(["lb", "--config", toml.to_str().unwrap()])
        .env_remove("WHARF_LB_CONFIG")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!(
            "cannot listen on 127.0.0.1:{} (lb.http)",
            lb.http.port()
        )),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_client_connection_is_closed_after_the_socket_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let backend = Backend::start("idle").await;
    let services = format!(
        "services {{ web {{ hosts web.example.com; domains {{ d {{ members 127.0.0.1:{}; }} }} }} }}",
        backend.addr.port()
    );
    let lb = TestLb::start(bin(), &services, "socket_timeout_ms = 300", "", false);
    let mut s = tokio::net::TcpStream::connect(lb.http).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: web.example.com\r\n\r\n")
        .await
        .unwrap();
    // The answer comes, then the connection sits idle until the LB closes it.
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(PATIENCE, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the idle connection was never closed");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn large_bodies_stream_both_ways() {
    let lb = TestLb::start(bin(), SEED_SERVICES, "", "", true);
    let w = TestNode::clustered(bin(), "worker", &lb.wka(), true);
    w.deploy("echo.wasm", &fixtures::echo());
    wait_live(&lb, "worker", 1).await;
    let c = client();
    wait_until_async("the echo app", PATIENCE, || async {
        get(&c, &lb, WORKER_HOST, "/echo")
            .await
            .filter(|(s, _)| *s == 200)
    })
    .await;
    // 8 MiB in 64 KiB chunks, with no length given: chunked both ways.
    let chunk: Vec<u8> = (0..65_536u32).map(|i| (i % 251) as u8).collect();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..128).map(|_| Ok(chunk.clone())).collect();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let r = c
        .post(lb.url("/echo/upload"))
        .header("host", WORKER_HOST)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let back = r.bytes().await.unwrap();
    assert_eq!(back.len(), 128 * 65_536);
    assert!(back.chunks(65_536).all(|c| c == chunk.as_slice()));
}
