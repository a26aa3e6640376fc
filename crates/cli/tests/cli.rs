//! The command line itself: help, config check, bad config at start.

use std::process::Command;

fn wharf(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .env_remove("WHARF_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_lists_every_subcommand_and_option() {
    let (code, out, _) = wharf(&["--help"]);
    assert_eq!(code, 0);
    for s in ["server", "lb", "config", "--log-format"] {
        assert!(out.contains(s), "{s} missing from --help:\n{out}");
    }
    let (_, out, _) = wharf(&["server", "--help"]);
    for s in ["--config", "--worker-node", "WHARF_CONFIG", "./wharf-data"] {
        assert!(out.contains(s), "{s} missing from server --help:\n{out}");
    }
    let (_, out, _) = wharf(&["config", "check", "--help"]);
    assert!(out.contains("file:key: message"), "{out}");
}

#[test]
fn config_check_prints_every_error_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[server]\nport_offset = -1\nfoo = 1\n[server.http]\nport = \"x\"\n",
    )
    .unwrap();
    let (code, out, _) = wharf(&["config", "check", "--config", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    let file = bad.display().to_string();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    for key in ["server.port_offset", "server.http.port", "server.foo"] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("{file}:{key}: "))),
            "{key}: {out}"
        );
    }

    let syntax = dir.path().join("syntax.toml");
    std::fs::write(&syntax, "[server\n").unwrap();
    let (code, out, _) = wharf(&["config", "check", "--config", syntax.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        out.starts_with(&format!("{}:1:", syntax.display())),
        "{out}"
    );

    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[server]\nport_offset = 1\n").unwrap();
    let (code, out, _) = wharf(&["config", "check", "-c", good.to_str().unwrap()]);
    assert_eq!((code, out.trim().ends_with("ok")), (0, true), "{out}");
}

#[test]
fn a_bad_config_stops_the_server_with_the_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nworker = true\n").unwrap();
    let (code, _, err) = wharf(&["server", "--config", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("server.worker: unknown key"), "{err}");
}

#[test]
fn a_busy_port_is_reported_with_its_setting() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("w.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\ndata_dir = \"d\"\n[server.http]\nbind = \"127.0.0.1\"\nport = {port}\n\
             [server.https]\nport = 0\n[server.status]\nport = 0\n"
        ),
    )
    .unwrap();
    let (code, _, err) = wharf(&["server", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) && err.contains("server.http"),
        "{err}"
    );
}

#[test]
fn clustering_without_a_secret_is_refused_with_how_to_set_one() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("w.toml");
    std::fs::write(
        &cfg,
        "[clustering]\nenabled = true\nmembership_scheme = \"multicast\"\n",
    )
    .unwrap();
    let (code, out, _) = wharf(&["config", "check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        out.contains("clustering.secret_file:") && out.contains("WHARF_CLUSTER_SECRET"),
        "{out}"
    );
    assert!(
        out.contains("clustering.membership_scheme:") && out.contains("\"wka\""),
        "{out}"
    );
}

#[test]
fn lb_check_validates_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("loadbalancer.conf");
    let toml = dir.path().join("lb.toml");
    let check = || {
        wharf(&[
            "lb",
            "--check",
            "--config",
            toml.to_str().unwrap(),
            "--services",
            conf.to_str().unwrap(),
        ])
    };
    std::fs::write(
        &toml,
        "[lb]\nport_offset = 1\n[clustering]\nenabled = false\n",
    )
    .unwrap();

    // The seed's entries, with an autoscaler key: ok, with a warning.
    std::fs::write(
        &conf,
        "loadbalancer { instances 1; }\nservices {\n  appserver {\n    domains {\n      wso2.as.domain { hosts as.cloud-test.wso2.com; sub_domain worker; tenant_range *; }\n    }\n  }\n}\n",
    )
    .unwrap();
    let (code, out, _) = check();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok: 1 service(s)"), "{out}");
    assert!(
        out.contains("loadbalancer.conf:1:16: \"instances\" in loadbalancer is ignored"),
        "{out}"
    );

    // A syntax error: file:line:column, exit 1.
    std::fs::write(
        &conf,
        "services {\n  appserver {\n    hosts a.example\n  }\n}\n",
    )
    .unwrap();
    let (code, out, _) = check();
    assert_eq!(code, 1);
    assert!(
        out.contains("loadbalancer.conf:4:3: expected ';' after \"hosts\", found '}'"),
        "{out}"
    );

    // Errors in lb.toml are named by key.
    std::fs::write(
        &toml,
        "[lb]\nalgorithm = \"fastest\"\n[lb.http]\nport = 70000\n",
    )
    .unwrap();
    let (code, out, _) = wharf(&["lb", "--check", "--config", toml.to_str().unwrap()]);
    assert_eq!(code, 1);
    for needle in [
        "lb.toml:lb.algorithm",
        "lb.toml:lb.http.port",
        "clustering.secret_file",
    ] {
        assert!(out.contains(needle), "{needle} missing:\n{out}");
    }
}
