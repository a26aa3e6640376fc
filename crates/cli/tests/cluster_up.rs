//! End to end: `wharf cluster up` starts a load balancer, a manager and
//! workers as separate processes serving the example, and stops them all.

use std::path::Path;
use wharf_testkit::{wait_until_async, WharfProcess, PATIENCE};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_wharf"))
}

/// The port of the first `http://localhost:PORT/` URL on `line`.
fn port_in(line: &str) -> u16 {
    let rest = &line[line.find("http://localhost:").expect("a URL") + "http://localhost:".len()..];
    rest[..rest.find('/').expect("a path")]
        .parse()
        .expect("a port")
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_up_serves_the_example_through_the_lb_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cluster");
    let mut up = WharfProcess::start(
        bin(),
        &[
            "cluster",
            "up",
            "--workers",
            "2",
            "--ephemeral-ports",
            "--dir",
            data.to_str().unwrap(),
        ],
        &[],
        "wharf cluster up",
    );
    up.wait_for_line("Wharf cluster is up", PATIENCE);
    let port = port_in(&up.wait_for_line("application  http://localhost:", PATIENCE));
    let lb = format!("http://127.0.0.1:{port}");

    // The example through the worker host, and the manager through its host.
    let c = reqwest::Client::new();
    let body = c
        .get(format!("{lb}/greeter/hi"))
        .header("host", "localhost")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("You asked for /greeter/hi"), "{body}");
    let r = c
        .get(format!("{lb}/greeter/"))
        .header("host", "mgt.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Both workers joined, and requests keep being served.
    for _ in 0..10 {
        let r = c
            .get(format!("{lb}/greeter/"))
            .header("host", "localhost")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let workers_seen: std::collections::BTreeSet<String> = up
        .output()
        .iter()
        .filter(|l| l.starts_with("[worker-") && l.contains("joining the cluster"))
        .map(|l| l[..l.find(']').unwrap()].to_string())
        .collect();
    assert_eq!(workers_seen.len(), 2, "{workers_seen:?}");

    // A secret and an admin password were generated, private to their owner.
    let secret = data.join("cluster.secret");
    let mode = |p: &std::path::Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions())
            & 0o777
    };
    assert_eq!(mode(&secret), 0o600);
    assert!(std::fs::read_to_string(&secret).unwrap().len() >= 32);
    let password_file = data.join("admin.password");
    assert_eq!(mode(&password_file), 0o600);
    let password = std::fs::read_to_string(&password_file).unwrap();
    assert!(password.trim().len() >= 20);
    // It was printed with the URLs, and nowhere in the members' logs.
    let out = up.output();
    assert!(
        out.iter()
            .any(|l| l.contains("user admin, password") && l.contains(password.trim())),
        "credentials not printed"
    );
    assert!(
        !out.iter()
            .any(|l| l.starts_with('[') && l.contains(password.trim())),
        "a member logged the admin password"
    );
    // The example came through the manager: both workers serve revision 1.
    for w in ["[worker-1]", "[worker-2]"] {
        assert!(
            out.iter().any(|l| l.starts_with(w)
                && l.contains("serving revision")
                && l.contains("revision=1")),
            "{w} did not check the example out"
        );
    }

    // Ctrl-C: every member drains and stops, then the supervisor exits 0.
    up.signal("INT");
    assert_eq!(up.wait_exit(PATIENCE), Some(0));
    for member in ["[lb]", "[manager]", "[worker-1]", "[worker-2]"] {
        assert!(
            up.output().iter().any(|l| l.starts_with(member)
                && (l.contains("node stopped") || l.contains("load balancer stopped"))),
            "{member} did not stop cleanly"
        );
    }
    wait_until_async("the LB port to close", PATIENCE, || async {
        reqwest::get(format!("{lb}/")).await.is_err().then_some(())
    })
    .await;
}
