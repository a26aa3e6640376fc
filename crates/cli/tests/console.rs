//! The management console in a real headless Chromium, through the load
//! balancer's management host, against a real cluster: sign in (refused,
//! then by keyboard), the cluster page, deploy by upload, see the app
//! served through the LB, redeploy, roll back, undeploy, a failed upload,
//! tenants, a tenant admin who sees only their tenant, a phone-width
//! screen. A screenshot of each page is saved under
//! `target/console-screens/`.

use std::path::{Path, PathBuf};
use wharf_testkit::browser::fantoccini::{Client, Locator};
use wharf_testkit::browser::{browser_available, Browser};
use wharf_testkit::cluster::{ADMIN_PASSWORD, MGT_HOST};
use wharf_testkit::{fixtures, wait_until_async, TestCluster, PATIENCE};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_wharf"))
}

fn screens() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screens")
}

/// WebDriver's Tab and Enter keys.
const TAB: &str = "\u{E004}";
const ENTER: &str = "\u{E007}";

/// Waits until the page's text contains `text`; returns the text.
async fn wait_text(c: &Client, text: &str) -> String {
    let found = wait_until_async(&format!("the page to say {text:?}"), PATIENCE, || async {
        let body = c.find(Locator::Css("body")).await.ok()?.text().await.ok()?;
        body.contains(text).then_some(body)
    })
    .await;
    found
}

async fn click_link(c: &Client, text: &str) {
    c.find(Locator::LinkText(text))
        .await
        .unwrap_or_else(|e| panic!("no link {text:?}: {e}"))
        .click()
        .await
        .unwrap();
}

async fn click_button(c: &Client, text: &str) {
    let xpath = format!("//button[contains(normalize-space(.), {text:?})]");
    c.find(Locator::XPath(&xpath))
        .await
        .unwrap_or_else(|e| panic!("no button {text:?}: {e}"))
        .click()
        .await
        .unwrap();
}

async fn sign_in(c: &Client, base: &str, user: &str, password: &str) {
    c.goto(&format!("{base}/console/login")).await.unwrap();
    c.find(Locator::Css("input[name=user]"))
        .await
        .unwrap()
        .send_keys(user)
        .await
        .unwrap();
    c.find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    click_button(c, "Sign in").await;
}

async fn sign_out(c: &Client) {
    click_button(c, "Sign out").await;
    wait_text(c, "Sign in").await;
}

/// Deploys `file` at `context` through the deploy page; waits for the rollout.
async fn deploy(c: &Client, base: &str, file: &Path, context: &str) {
    c.goto(&format!("{base}/console/deploy")).await.unwrap();
    c.find(Locator::Css("input[type=file]"))
        .await
        .unwrap()
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
    c.find(Locator::Css("input[name=context]"))
        .await
        .unwrap()
        .send_keys(context)
        .await
        .unwrap();
    click_button(c, "Deploy").await;
}

async fn served(c: &TestCluster, path: &str, body: &str) {
    c.wait_body(path, body).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_in_a_real_browser() {
    assert!(
        browser_available(),
        "chromium and chromedriver are needed (Debian: chromium chromium-driver; ./scripts/test.sh installs them)"
    );
    let cluster = TestCluster::start(bin(), 1, "");
    cluster.wait_ready(1).await;
    let browser = Browser::start(&format!("MAP {MGT_HOST} 127.0.0.1")).await;
    let c = &browser.client;
    let base = format!("https://{MGT_HOST}:{}", cluster.lb.https.port());
    let shots = screens();
    let files = tempfile::tempdir().unwrap();
    let v1 = files.path().join("hello-v1.wasm");
    let v2 = files.path().join("hello-v2.wasm");
    let bad = files.path().join("not-a-component.wasm");
    std::fs::write(&v1, fixtures::says("version one\n")).unwrap();
    std::fs::write(&v2, fixtures::says("version two\n")).unwrap();
    std::fs::write(&bad, b"this is not WebAssembly").unwrap();

    // /carbon leads to the console; unsigned, to the sign-in page.
    c.goto(&format!("{base}/carbon")).await.unwrap();
    wait_text(c, "Sign in").await;
    assert!(c
        .current_url()
        .await
        .unwrap()
        .path()
        .starts_with("/console/login"));
    browser.screenshot(&shots, "01-sign-in").await;

    // A wrong password is refused.
    sign_in(c, &base, "admin", "not the password at all").await;
    wait_text(c, "Wrong user name or password").await;
    browser.screenshot(&shots, "02-sign-in-refused").await;

    // Signed in with the keyboard alone: the user field has the focus.
    c.goto(&format!("{base}/console/login")).await.unwrap();
    let focused = wait_until_async("the user field to have the focus", PATIENCE, || async {
        let e = c.active_element().await.ok()?;
        (e.attr("name").await.ok()?.as_deref() == Some("user")).then_some(e)
    })
    .await;
    focused
        .send_keys(&format!("admin{TAB}{ADMIN_PASSWORD}{ENTER}"))
        .await
        .unwrap();
    let cluster_text = wait_text(c, "worker").await;
    assert!(
        cluster_text.contains("Cluster") && cluster_text.contains("manager"),
        "{cluster_text}"
    );
    assert!(cluster_text.contains("ready"), "{cluster_text}");
    browser.screenshot(&shots, "03-cluster").await;

    // Deploy by upload; the rollout page follows it to every worker.
    deploy(c, &base, &v1, "/hello").await;
    wait_text(c, "Every worker serves revision 1").await;
    browser.screenshot(&shots, "04-rollout").await;
    served(&cluster, "/hello", "version one\n").await;

    // A second version, then the applications page with its requests.
    deploy(c, &base, &v2, "/hello").await;
    wait_text(c, "Every worker serves revision 2").await;
    served(&cluster, "/hello", "version two\n").await;
    for _ in 0..5 {
        cluster.get("/hello").await.unwrap();
    }
    c.goto(&format!("{base}/console/apps")).await.unwrap();
    wait_until_async(
        "the requests to show on the applications page",
        PATIENCE,
        || async {
            c.refresh().await.ok()?;
            let row = c
                .find(Locator::XPath("//tr[td[contains(., '/hello')]]"))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            // The requests column counts what the worker answered.
            row.split_whitespace()
                .any(|w| w.parse::<u64>().is_ok_and(|n| n >= 5))
                .then_some(())
        },
    )
    .await;
    // The manager samples the workers' counters every 5 s: the requests
    // just made show as a rate over the last minute, with no 5xx.
    wait_until_async(
        "a request rate on the applications page",
        PATIENCE,
        || async {
            c.refresh().await.ok()?;
            let cell = |n: usize| {
                let xpath = format!("//tr[td[contains(., '/hello')]]/td[{n}]");
                async move { c.find(Locator::XPath(&xpath)).await.ok()?.text().await.ok() }
            };
            let rate: f64 = cell(7).await?.trim().parse().ok()?;
            let errors = cell(8).await?;
            (rate > 0.0 && errors.trim() == "0.0 %").then_some(())
        },
    )
    .await;
    let apps = wait_text(c, "/hello").await;
    assert!(
        apps.contains("serving") && apps.contains("current revision 2"),
        "{apps}"
    );
    browser.screenshot(&shots, "05-applications").await;

    // A failed upload says why, and changes nothing.
    deploy(c, &base, &bad, "/broken").await;
    let error = wait_text(c, "not a WebAssembly component").await;
    assert!(error.contains("Deploy"), "{error}");
    browser.screenshot(&shots, "06-deploy-refused").await;

    // History and rollback (with a confirmation).
    c.goto(&format!("{base}/console/history")).await.unwrap();
    wait_text(c, "deploy /hello").await;
    browser.screenshot(&shots, "07-history").await;
    click_link(c, "Roll back to 1…").await;
    wait_text(c, "back to revision 1?").await;
    browser.screenshot(&shots, "08-rollback-confirm").await;
    click_button(c, "Roll back to revision 1").await;
    wait_text(c, "Every worker serves revision 3").await;
    served(&cluster, "/hello", "version one\n").await;

    // Undeploy (with a confirmation): the LB answers 404 for it.
    c.goto(&format!("{base}/console/apps")).await.unwrap();
    click_link(c, "Undeploy…").await;
    wait_text(c, "Undeploy /hello of").await;
    browser.screenshot(&shots, "09-undeploy-confirm").await;
    click_button(c, "Undeploy /hello").await;
    wait_text(c, "Every worker serves revision 4").await;
    wait_until_async("/hello to be gone", PATIENCE, || async {
        (cluster.get("/hello").await?.0 == 404).then_some(())
    })
    .await;

    // Tenants: the super admin creates one with its admin's password.
    c.goto(&format!("{base}/console/tenants")).await.unwrap();
    c.find(Locator::Css("input[name=domain]"))
        .await
        .unwrap()
        .send_keys("shop.example")
        .await
        .unwrap();
    c.find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys("shop admin password, long")
        .await
        .unwrap();
    click_button(c, "Create").await;
    let tenants = wait_text(c, "Created tenant shop.example").await;
    assert!(tenants.contains("admin@shop.example"), "{tenants}");
    browser.screenshot(&shots, "10-tenants").await;
    // The super admin deploys for the super tenant again, to see it hidden
    // from the tenant admin.
    deploy(c, &base, &v1, "/super-only").await;
    wait_text(c, "Every worker serves revision 5").await;
    sign_out(c).await;

    // A tenant admin sees only their tenant.
    sign_in(c, &base, "admin@shop.example", "shop admin password, long").await;
    let nav = wait_text(c, "Cluster").await;
    assert!(
        !nav.contains("Tenants"),
        "a tenant admin has no tenants page: {nav}"
    );
    deploy(c, &base, &v2, "/cart").await;
    wait_text(c, "Every worker serves revision 1").await;
    served(&cluster, "/t/shop.example/cart", "version two\n").await;
    c.goto(&format!("{base}/console/apps")).await.unwrap();
    let own = wait_text(c, "/t/shop.example/cart").await;
    assert!(
        own.contains("shop.example") && !own.contains("/super-only"),
        "{own}"
    );
    browser.screenshot(&shots, "11-tenant-applications").await;
    c.goto(&format!("{base}/console/apps?tenant="))
        .await
        .unwrap();
    let still_own = wait_text(c, "shop.example").await;
    assert!(!still_own.contains("/super-only"), "{still_own}");
    c.goto(&format!("{base}/console/tenants")).await.unwrap();
    wait_text(c, "managed by the super admin only").await;
    c.goto(&format!("{base}/console/history?tenant=other.example"))
        .await
        .unwrap();
    wait_text(c, "administers tenant shop.example only").await;

    // A phone-width screen: nothing overflows the page sideways.
    c.set_window_size(390, 844).await.unwrap();
    c.goto(&format!("{base}/console/cluster")).await.unwrap();
    wait_text(c, "worker").await;
    let overflow = c
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        overflow.as_i64().unwrap_or(1) <= 0,
        "the page is wider than the phone: {overflow}"
    );
    browser.screenshot(&shots, "12-cluster-phone").await;

    // Workers serve no console, and said so when they started.
    let worker = &cluster.workers[0];
    let r = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap()
        .get(format!(
            "https://127.0.0.1:{}/console/",
            worker.https.port()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    worker
        .process
        .wait_for_line("no management console", PATIENCE);
    browser.close().await;
    for n in 1..=12 {
        let any = std::fs::read_dir(&shots).unwrap().flatten().any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{n:02}-"))
        });
        assert!(any, "screenshot {n} is missing");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn console_cookies_are_secure_and_forms_need_their_csrf_token() {
    let dir = tempfile::tempdir().unwrap();
    let mgr = wharf_testkit::TestNode::start_with_env(
        bin(),
        dir,
        "",
        "[deployment_synchronizer]\nenabled = true\n",
        &[],
        &[("WHARF_ADMIN_PASSWORD", ADMIN_PASSWORD)],
    );
    let base = format!("https://localhost:{}", mgr.https.port());
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&mgr.generated_cert_pem()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // The console is HTTPS only: plain HTTP is sent there.
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(mgr.url("/console/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 308);
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("https://"));

    // The sign-in form's token is a cookie and a field that must match.
    let r = client
        .get(format!("{base}/console/login"))
        .send()
        .await
        .unwrap();
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'self'"));
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set.contains("Secure") && set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let login_token = set
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string();
    let form = [
        ("csrf", "forged"),
        ("user", "admin"),
        ("password", ADMIN_PASSWORD),
    ];
    let r = client
        .post(format!("{base}/console/login"))
        .header("cookie", format!("wharf_console_login={login_token}"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a sign-in without the matching token");
    let form = [
        ("csrf", login_token.as_str()),
        ("user", "admin"),
        ("password", ADMIN_PASSWORD),
    ];
    let r = client
        .post(format!("{base}/console/login"))
        .header("cookie", format!("wharf_console_login={login_token}"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("wharf_console="))
        .expect("a session cookie");
    assert!(
        session.contains("Secure")
            && session.contains("HttpOnly")
            && session.contains("SameSite=Strict"),
        "{session}"
    );
    let cookie = session.split(';').next().unwrap().to_string();

    // Signed in: pages answer; a change without the session's token is refused.
    let r = client
        .get(format!("{base}/console/cluster"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the sign-out form carries the token")
        .to_string();
    let r = client
        .post(format!("{base}/console/rollback"))
        .header("cookie", &cookie)
        .form(&[("csrf", "forged"), ("revision", "1"), ("tenant", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Signing out ends the session.
    let r = client
        .post(format!("{base}/console/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = client
        .get(format!("{base}/console/cluster"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "back to the sign-in page");
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/console/login"));
}
