//! The runtime against real components: responses, every limit, bad
//! artifacts and the compiled-code cache. No sockets: requests are built
//! in memory and handed to `Runtime::handle`.

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wharf_config::{NodeConfig, RuntimeConfig};
use wharf_runtime::{App, Failure, LoadError, Runtime, Scheme};
use wharf_testkit::fixtures;

fn config(dir: &std::path::Path, extra: &str) -> RuntimeConfig {
    let text = format!(
        "[runtime]\ncache_dir = \"{}\"\n{extra}",
        dir.join("cache").display()
    );
    NodeConfig::from_toml(&text, "test.toml", dir)
        .unwrap()
        .runtime
}

fn runtime(dir: &std::path::Path, extra: &str) -> Runtime {
    Runtime::new(&config(dir, extra), &mut Default::default()).unwrap()
}

fn load(rt: &Runtime, name: &str, bytes: &[u8]) -> Arc<App> {
    Arc::new(rt.load(name, &format!("/{name}"), bytes).unwrap())
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(format!("http://localhost{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

async fn body_text(resp: http::Response<wharf_runtime::ResponseBody>) -> String {
    String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}

#[tokio::test]
async fn hello_answers() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path(), "");
    let app = load(&rt, "hello", &fixtures::hello());
    let resp = rt.handle(&app, get("/hello"), Scheme::Http).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(body_text(resp).await, "hello from wasm\n");
}

#[tokio::test]
async fn echo_sees_method_path_headers_body_and_context() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path(), "");
    let app = load(&rt, "echo", &fixtures::echo());
    let req = Request::post("http://localhost/echo/a/b?x=1&y=2")
        .header("x-custom", "value 1")
        .header("x-wharf-context-path", "/forged")
        .body(Full::new(Bytes::from_static(b"the request body")))
        .unwrap();
    let resp = rt.handle(&app, req, Scheme::Http).await.unwrap();
    let h = resp.headers().clone();
    assert_eq!(h["x-echo-method"], "POST");
    assert_eq!(h["x-echo-path"], "/echo/a/b?x=1&y=2");
    assert_eq!(h["x-echo-h-x-custom"], "value 1");
    assert_eq!(
        h["x-echo-h-x-wharf-context-path"], "/echo",
        "a client cannot forge the context path"
    );
    assert_eq!(body_text(resp).await, "the request body");
}

#[tokio::test]
async fn a_trap_is_a_500_and_the_runtime_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path(), "");
    let trap = load(&rt, "trap", &fixtures::trap());
    let hello = load(&rt, "hello", &fixtures::hello());
    for _ in 0..3 {
        let f = rt
            .handle(&trap, get("/trap"), Scheme::Http)
            .await
            .unwrap_err();
        assert!(
            matches!(f, Failure::Trap(ref d) if d.contains("unreachable")),
            "{f:?}"
        );
        assert_eq!(f.status(), 500);
        assert!(
            !f.client_message().contains("unreachable"),
            "no internals for the client"
        );
    }
    let resp = rt
        .handle(&hello, get("/hello"), Scheme::Http)
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn an_endless_loop_is_stopped_by_the_time_limit() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path(), "request_timeout_ms = 300\n");
    let app = load(&rt, "loop", &fixtures::endless_loop());
    let hello = load(&rt, "hello", &fixtures::hello());
    let started = Instant::now();
    let (looped, hello_resp) = tokio::join!(rt.handle(&app, get("/loop"), Scheme::Http), async {
        // While the loop spins, other requests are served.
        tokio::time::sleep(Duration::from_millis(50)).await;
        rt.handle(&hello, get("/hello"), Scheme::Http).await
    });
    assert_eq!(looped.unwrap_err(), Failure::Timeout);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(hello_resp.unwrap().status(), 200);
}

#[tokio::test]
async fn a_guest_blocked_on_the_host_is_stopped_by_the_time_limit() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path(), "request_timeout_ms = 200\n");
    let app = load(&rt, "sleepy", &fixtures::sleepy());
    let f = rt
        .handle(&app, get("/sleepy?ms=5000"), Scheme::Http)
        .await
        .unwrap_err();
    assert_eq!(f, Failure::Timeout);
    assert_eq!(f.status(), 504);
    let ok = rt
        .handle(&app, get("/sleepy?ms=10"), Scheme::Http)
        .await
        .unwrap();
    assert_eq!(body_text(ok).await, "slept\n");
}

#[tokio::test]
async fn memory_growth_past_the_limit_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path(), "memory_limit_mb = 2\n");
    let app = load(&rt, "memhog", &fixtures::memory_hog());
    let f = rt
        .handle(&app, get("/memhog"), Scheme::Http)
        .await
        .unwrap_err();
    assert_eq!(f, Failure::OutOfMemory);
    let hello = load(&rt, "hello", &fixtures::hello());
    assert_eq!(
        rt.handle(&hello, get("/hello"), Scheme::Http)
            .await
            .unwrap()
            .status(),
        200
    );
}

/// Starts a 600 ms request to `app` and returns once it holds an instance.
async fn hold_a_slot(rt: &Arc<Runtime>, app: &Arc<App>) -> tokio::task::JoinHandle<u16> {
    let slow = {
        let (rt, app) = (rt.clone(), app.clone());
        tokio::spawn(async move {
            let resp = rt.handle(&app, get("/sleepy?ms=600"), Scheme::Http).await;
            resp.unwrap().status().as_u16()
        })
    };
    let label = wharf_runtime::metrics::AppLabel {
        app: app.name.clone(),
    };
    wharf_testkit::wait_until_async(
        "the slow request to start",
        wharf_testkit::PATIENCE,
        || async { (rt.metrics().instances.get_or_create(&label).get() == 1).then_some(()) },
    )
    .await;
    slow
}

#[tokio::test]
async fn instances_per_app_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(runtime(
        dir.path(),
        "max_instances_per_app = 1\nqueue_timeout_ms = 50\n",
    ));
    let app = load(&rt, "sleepy", &fixtures::sleepy());
    let other = load(&rt, "hello", &fixtures::hello());
    let slow = hold_a_slot(&rt, &app).await;
    let f = rt
        .handle(&app, get("/sleepy?ms=1"), Scheme::Http)
        .await
        .unwrap_err();
    assert_eq!(f, Failure::Busy);
    assert_eq!(f.status(), 503);
    // Another app is not affected by this app's limit.
    let resp = rt.handle(&other, get("/"), Scheme::Http).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(slow.await.unwrap(), 200);
}

#[tokio::test]
async fn instances_per_node_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(runtime(
        dir.path(),
        "max_instances = 1\nqueue_timeout_ms = 50\n",
    ));
    let app = load(&rt, "sleepy", &fixtures::sleepy());
    let other = load(&rt, "hello", &fixtures::hello());
    let slow = hold_a_slot(&rt, &app).await;
    // The node-wide limit applies across applications.
    let f = rt.handle(&other, get("/"), Scheme::Http).await.unwrap_err();
    assert_eq!(f, Failure::Busy);
    assert_eq!(slow.await.unwrap(), 200);
    let resp = rt.handle(&other, get("/"), Scheme::Http).await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn request_bodies_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path(), "max_request_body_bytes = 1000\n");
    let app = load(&rt, "echo", &fixtures::echo());
    let big = Request::post("http://localhost/echo")
        .body(Full::new(Bytes::from(vec![b'x'; 1001])))
        .unwrap();
    let f = rt.handle(&app, big, Scheme::Http).await.unwrap_err();
    assert_eq!(f, Failure::BodyTooLarge { limit: 1000 });
    assert_eq!(f.status(), 413);

    // Without a Content-Length the limit is enforced while streaming: the
    // guest's read fails and the response does not complete.
    let stream =
        http_body_util::StreamBody::new(futures_stream(vec![vec![b'y'; 600], vec![b'y'; 600]]));
    let req = Request::post("http://localhost/echo").body(stream).unwrap();
    let outcome = match rt.handle(&app, req, Scheme::Http).await {
        Ok(resp) => resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes().len())
            .ok(),
        Err(_) => None,
    };
    assert_ne!(
        outcome,
        Some(1200),
        "an over-limit body was passed through whole"
    );

    let ok = Request::post("http://localhost/echo")
        .body(Full::new(Bytes::from(vec![b'z'; 1000])))
        .unwrap();
    assert_eq!(
        body_text(rt.handle(&app, ok, Scheme::Http).await.unwrap())
            .await
            .len(),
        1000
    );
}

fn futures_stream(
    chunks: Vec<Vec<u8>>,
) -> impl futures_core::Stream<Item = Result<http_body::Frame<Bytes>, std::convert::Infallible>>
       + Send
       + 'static {
    futures_util::stream::iter(
        chunks
            .into_iter()
            .map(|c| Ok(http_body::Frame::data(Bytes::from(c)))),
    )
}

#[tokio::test]
async fn bad_artifacts_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path(), "");
    let err = rt.load("junk", "/junk", b"this is not wasm").unwrap_err();
    assert!(matches!(err, LoadError::NotAComponent(_)), "{err}");
    let core = wat::parse_str("(module)").unwrap();
    let err = rt.load("core", "/core", &core).unwrap_err();
    assert!(err.to_string().contains("core module"), "{err}");
    let err = rt
        .load("none", "/none", &fixtures::no_handler())
        .unwrap_err();
    assert!(matches!(err, LoadError::NoHandler(_)), "{err}");
    assert!(
        err.to_string().contains("wasi:http/incoming-handler"),
        "{err}"
    );
    let mut truncated = fixtures::hello();
    truncated.truncate(truncated.len() / 2);
    assert!(matches!(
        rt.load("cut", "/cut", &truncated).unwrap_err(),
        LoadError::NotAComponent(_)
    ));
}

#[tokio::test]
async fn unknown_imports_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path(), "");
    // Exports something under the handler's name, imports two interfaces
    // no node provides: refused with both named.
    let component = wat::parse_str(
        r#"(component
            (import "acme:db/query@1.0.0" (instance))
            (import "acme:kv/store@2.0.0" (instance))
            (instance $h)
            (export "wasi:http/incoming-handler@0.2.12" (instance $h)))"#,
    )
    .unwrap();
    let err = rt.load("x", "/x", &component).unwrap_err();
    assert!(matches!(err, LoadError::MissingImports(_)), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("acme:db/query@1.0.0") && msg.contains("acme:kv/store@2.0.0"),
        "{msg}"
    );
}

#[tokio::test]
async fn compiled_code_is_cached_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let first = runtime(dir.path(), "");
    let a = first.load("hello", "/hello", &fixtures::hello()).unwrap();
    assert!(!a.from_cache);
    drop(first);
    let second = runtime(dir.path(), "");
    let b = Arc::new(second.load("hello", "/hello", &fixtures::hello()).unwrap());
    assert!(b.from_cache, "a restart must not recompile");
    assert_eq!(
        second
            .handle(&b, get("/hello"), Scheme::Http)
            .await
            .unwrap()
            .status(),
        200
    );

    // A corrupted cache entry is detected and recompiled, not trusted.
    for entry in std::fs::read_dir(dir.path().join("cache")).unwrap() {
        let path = entry.unwrap().path();
        let mut data = std::fs::read(&path).unwrap();
        let n = data.len();
        data[n - 10] ^= 0xff;
        std::fs::write(&path, data).unwrap();
    }
    let third = runtime(dir.path(), "");
    let c = Arc::new(third.load("hello", "/hello", &fixtures::hello()).unwrap());
    assert!(!c.from_cache);
    assert_eq!(
        third
            .handle(&c, get("/hello"), Scheme::Http)
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn an_application_may_set_limits_below_the_nodes_never_above() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(
        dir.path(),
        "memory_limit_mb = 64\nrequest_timeout_ms = 5000\n",
    );
    let own = |mb: u64, ms: u64| wharf_runtime::Limits {
        memory_limit: Some(mb * 1024 * 1024),
        request_timeout: Some(Duration::from_millis(ms)),
        max_instances: Some(100_000),
    };
    // Below the node's: its own limits apply.
    let sleepy = Arc::new(
        rt.load_with_limits("sleepy", "/sleepy", &fixtures::sleepy(), own(2, 200))
            .unwrap(),
    );
    let f = rt
        .handle(&sleepy, get("/sleepy?ms=2000"), Scheme::Http)
        .await
        .unwrap_err();
    assert_eq!(f, Failure::Timeout, "the app's 200 ms, not the node's 5 s");
    let hog = Arc::new(
        rt.load_with_limits("memhog", "/memhog", &fixtures::memory_hog(), own(2, 200))
            .unwrap(),
    );
    assert_eq!(
        rt.handle(&hog, get("/"), Scheme::Http).await.unwrap_err(),
        Failure::OutOfMemory
    );
    // Above the node's: capped at the node's.
    let big = rt
        .load_with_limits("hello", "/hello", &fixtures::hello(), own(1024, 600_000))
        .unwrap();
    assert_eq!(big.limits.memory_limit, 64 * 1024 * 1024);
    assert_eq!(big.limits.request_timeout, Duration::from_millis(5000));
    assert_eq!(big.limits.max_instances, 500);
}

#[tokio::test]
async fn a_tenant_scope_adds_its_configuration_and_caps() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(runtime(
        dir.path(),
        "queue_timeout_ms = 50\n[runtime.env]\nNODE_WIDE = \"yes\"\n",
    ));
    let env = load(&rt, "env", &fixtures::env());
    let scope = wharf_runtime::Scope {
        memory_limit: Some(2 * 1024 * 1024),
        permits: Some(Arc::new(tokio::sync::Semaphore::new(1))),
        env: Some(Arc::new(std::collections::BTreeMap::from([(
            "GREETING".to_string(),
            "from the tenant".to_string(),
        )]))),
    };
    let resp = rt
        .handle_in(&env, get("/env"), Scheme::Http, &scope)
        .await
        .unwrap();
    let text = body_text(resp).await;
    assert!(text.contains("GREETING=from the tenant\n"), "{text}");
    assert!(text.contains("NODE_WIDE=yes\n"), "{text}");
    assert!(text.contains("WHARF_CONTEXT_PATH=/env\n"), "{text}");
    // Without the scope, the tenant's values are not there.
    let plain = body_text(rt.handle(&env, get("/env"), Scheme::Http).await.unwrap()).await;
    assert!(!plain.contains("GREETING"), "{plain}");
    // The tenant's memory cap is below the node's.
    let hog = load(&rt, "memhog", &fixtures::memory_hog());
    assert_eq!(
        rt.handle_in(&hog, get("/"), Scheme::Http, &scope)
            .await
            .unwrap_err(),
        Failure::OutOfMemory
    );
    // The tenant's instance budget is shared by its apps.
    let sleepy = load(&rt, "sleepy", &fixtures::sleepy());
    let held = {
        let (rt, sleepy, scope) = (rt.clone(), sleepy.clone(), scope.clone());
        tokio::spawn(async move {
            rt.handle_in(&sleepy, get("/sleepy?ms=600"), Scheme::Http, &scope)
                .await
                .map(|r| r.status().as_u16())
        })
    };
    let label = wharf_runtime::metrics::AppLabel {
        app: "sleepy".into(),
    };
    wharf_testkit::wait_until_async(
        "the tenant's one instance to be taken",
        wharf_testkit::PATIENCE,
        || async { (rt.metrics().instances.get_or_create(&label).get() == 1).then_some(()) },
    )
    .await;
    assert_eq!(
        rt.handle_in(&env, get("/env"), Scheme::Http, &scope)
            .await
            .unwrap_err(),
        Failure::Busy
    );
    assert_eq!(
        rt.handle(&env, get("/env"), Scheme::Http)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(held.await.unwrap().unwrap(), 200);
}
