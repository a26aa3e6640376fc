//! The git and svn backends against real repositories: a bare git
//! repository on disk, and a Subversion repository served by `svnserve`.
//! The manager commits through one clone, a worker checks out through
//! another, as on two machines.

use std::collections::BTreeMap;
use wharf_config::{RepositoryType, SyncConfig};
use wharf_deploy::{Apps, CommitInfo, Hint, RepoError, Repository, Source};
use wharf_proto::AppEntry;

fn sync_config(kind: RepositoryType, url: &str, creds: Option<(&str, &str)>) -> SyncConfig {
    let text = match kind {
        RepositoryType::Git => "git",
        RepositoryType::Svn => "svn",
        RepositoryType::Builtin => unreachable!(),
    };
    let mut toml =
        format!("[deployment_synchronizer]\nrepository_type = \"{text}\"\nurl = \"{url}\"\n");
    if let Some((u, p)) = creds {
        toml.push_str(&format!("user = \"{u}\"\npassword = \"{p}\"\n"));
    }
    wharf_config::NodeConfig::from_toml(&toml, "t.toml", std::path::Path::new("/"))
        .unwrap()
        .deployment_synchronizer
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(files_under(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

fn info(message: &str) -> CommitInfo {
    CommitInfo {
        author: "admin".into(),
        message: message.into(),
        created_at_ms: 1_795_000_000_000,
    }
}

fn entry(sha: &str, size: usize) -> AppEntry {
    AppEntry {
        sha256: sha.to_string(),
        size: size as u64,
        deployed_at_ms: 1,
        deployed_by: "admin".into(),
        limits: Default::default(),
    }
}

async fn deploy(repo: &Repository, tenant: u32, context: &str, bytes: &[u8]) -> u64 {
    let sha = repo.put_blob(tenant, bytes.to_vec()).await.unwrap();
    let (c, e) = (context.to_string(), entry(&sha, bytes.len()));
    let done = repo
        .commit(
            tenant,
            info(&format!("deploy {context}")),
            move |apps: &Apps| {
                let mut apps = apps.clone();
                apps.insert(c.clone(), e.clone());
                Ok(apps)
            },
        )
        .await
        .unwrap();
    assert!(done.changed);
    done.manifest.revision
}

async fn exercise(manager: Repository, worker: Source) {
    let hint = Hint::default();
    assert_eq!(manager.head(0).await.unwrap(), None);
    assert!(worker
        .checkout(0, &hint, |_| false)
        .await
        .unwrap()
        .is_none());

    assert_eq!(deploy(&manager, 0, "/a", b"component a").await, 1);
    let got = worker.checkout(0, &hint, |_| false).await.unwrap().unwrap();
    assert_eq!(got.manifest.revision, 1);
    assert_eq!(got.blobs.values().collect::<Vec<_>>(), [b"component a"]);
    let sha_a = got.manifest.apps["/a"].sha256.clone();

    assert_eq!(deploy(&manager, 0, "/shop/cart", b"component b").await, 2);
    // What the worker has is not fetched again.
    let have = sha_a.clone();
    let got = worker
        .checkout(0, &hint, move |s| s == have)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.manifest.revision, 2);
    assert_eq!(got.blobs.len(), 1);
    assert_eq!(got.blobs.values().next().unwrap(), b"component b");

    // Undeploy, then an undeploy of nothing is refused and commits nothing.
    let undeploy = |c: &'static str| {
        move |apps: &Apps| {
            let mut apps = apps.clone();
            apps.remove(c)
                .ok_or_else(|| RepoError::NotFound(format!("nothing at {c}")))?;
            Ok(apps)
        }
    };
    let r3 = manager
        .commit(0, info("undeploy /a"), undeploy("/a"))
        .await
        .unwrap();
    assert_eq!((r3.manifest.revision, r3.changed), (3, true));
    let e = manager
        .commit(0, info("again"), undeploy("/a"))
        .await
        .unwrap_err();
    assert!(matches!(e, RepoError::NotFound(_)), "{e}");

    let history: Vec<u64> = manager
        .history(0)
        .await
        .unwrap()
        .iter()
        .map(|m| m.revision)
        .collect();
    assert_eq!(history, [3, 2, 1]);

    // Roll back to 1: a new revision with revision 1's applications.
    let one = manager.manifest(0, 1).await.unwrap();
    let apps = one.apps.clone();
    let r4 = manager
        .commit(0, info("rollback to 1"), move |_| Ok(apps.clone()))
        .await
        .unwrap();
    assert_eq!(r4.manifest.revision, 4);
    assert_eq!(r4.manifest.contents(), one.contents());
    assert_eq!(manager.blob(0, &sha_a).await.unwrap(), b"component a");
    let got = worker.checkout(0, &hint, |_| false).await.unwrap().unwrap();
    assert_eq!(got.manifest.revision, 4);
    assert_eq!(got.manifest.contents(), one.contents());

    // Another tenant is kept apart: its own numbering, nothing of tenant 0.
    assert_eq!(deploy(&manager, 7, "/a", b"tenant seven").await, 1);
    let got7 = worker.checkout(7, &hint, |_| false).await.unwrap().unwrap();
    assert_eq!(got7.blobs.values().collect::<Vec<_>>(), [b"tenant seven"]);
    assert_eq!(manager.head(0).await.unwrap().unwrap().revision, 4);
    assert_eq!(manager.history(7).await.unwrap().len(), 1);

    // The same applications again make no revision.
    let same = manager
        .commit(0, info("nothing"), |apps: &Apps| Ok(apps.clone()))
        .await
        .unwrap();
    assert!(!same.changed);
    assert_eq!(same.manifest.revision, 4);
    assert!(matches!(
        manager.manifest(0, 99).await,
        Err(RepoError::NoSuchRevision(99))
    ));
}

#[tokio::test]
async fn git_backend_commits_checks_out_and_keeps_tenants_apart() {
    let remote = tempfile::tempdir().unwrap();
    let bare = remote.path().join("apps.git");
    git2::Repository::init_bare(&bare).unwrap();
    let cfg = sync_config(RepositoryType::Git, bare.to_str().unwrap(), None);
    let (m, w) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let manager = Repository::open(&cfg, m.path(), m.path()).unwrap();
    let worker = Source::open(&cfg, w.path(), None).unwrap();
    exercise(manager, worker).await;

    // The tree is what an operator would expect to find.
    let repo = git2::Repository::open_bare(&bare).unwrap();
    let tip = repo
        .find_reference("refs/heads/main")
        .unwrap()
        .peel_to_commit()
        .unwrap();
    let tree = tip.tree().unwrap();
    for path in ["0/manifest.json", "0/webapps/a.wasm", "7/webapps/a.wasm"] {
        assert!(
            tree.get_path(std::path::Path::new(path)).is_ok(),
            "{path} missing"
        );
    }
    assert!(tree
        .get_path(std::path::Path::new("0/webapps/shop#cart.wasm"))
        .is_err());
    assert_eq!(tip.author().name(), Some("admin"));
}

#[tokio::test]
async fn two_managers_racing_on_git_lose_nothing() {
    let remote = tempfile::tempdir().unwrap();
    let bare = remote.path().join("apps.git");
    git2::Repository::init_bare(&bare).unwrap();
    let cfg = sync_config(RepositoryType::Git, bare.to_str().unwrap(), None);
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let m1 = Repository::open(&cfg, d1.path(), d1.path()).unwrap();
    let m2 = Repository::open(&cfg, d2.path(), d2.path()).unwrap();
    let mut tasks = vec![];
    for (i, m) in [m1.clone(), m2.clone(), m1, m2].into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            deploy(&m, 0, &format!("/app{i}"), format!("c{i}").as_bytes()).await
        }));
    }
    let mut revisions: Vec<u64> = vec![];
    for t in tasks {
        revisions.push(t.await.unwrap());
    }
    revisions.sort_unstable();
    assert_eq!(revisions, [1, 2, 3, 4]);
    let d3 = tempfile::tempdir().unwrap();
    let reader = Repository::open(&cfg, d3.path(), d3.path()).unwrap();
    let head = reader.head(0).await.unwrap().unwrap();
    assert_eq!(head.apps.len(), 4, "{:?}", head.apps.keys());
}

#[tokio::test]
async fn svn_backend_commits_checks_out_and_keeps_tenants_apart() {
    if !wharf_testkit::svn_available() {
        panic!("svn, svnadmin and svnserve are needed (Debian: subversion; ./scripts/test.sh installs it)");
    }
    let server = wharf_testkit::SvnServer::start();
    let url = format!("{}/as", server.url);
    let cfg = sync_config(
        RepositoryType::Svn,
        &url,
        Some((&server.user, &server.password)),
    );
    let (m, w) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let manager = Repository::open(&cfg, m.path(), m.path()).unwrap();
    let worker = Source::open(&cfg, w.path(), None).unwrap();
    exercise(manager, worker).await;
    // The seed's layout: url/<tenant id>/webapps/<name>.wasm.
    let list = server.svn(&["list", "-R", &url]);
    for want in ["0/manifest.json", "0/webapps/a.wasm", "7/webapps/a.wasm"] {
        assert!(
            list.lines().any(|l| l == want),
            "{want} missing from:\n{list}"
        );
    }
    // The password is never kept in svn's credential cache.
    let cached = files_under(&m.path().join("svn/config/auth"));
    assert!(cached.is_empty(), "svn cached credentials: {cached:?}");
}

#[tokio::test]
async fn a_wrong_svn_password_is_a_clear_error() {
    if !wharf_testkit::svn_available() {
        panic!("svn, svnadmin and svnserve are needed (Debian: subversion)");
    }
    let server = wharf_testkit::SvnServer::start();
    let cfg = sync_config(
        RepositoryType::Svn,
        &format!("{}/as", server.url),
        Some((&server.user, "not-the-password")),
    );
    let m = tempfile::tempdir().unwrap();
    let manager = Repository::open(&cfg, m.path(), m.path()).unwrap();
    let sha = manager.put_blob(0, b"x".to_vec()).await.unwrap();
    let e = manager
        .commit(0, info("deploy /x"), move |_| {
            Ok(BTreeMap::from([("/x".to_string(), entry(&sha, 1))]))
        })
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("svn") && e.to_lowercase().contains("auth"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn git_over_http_with_a_password() {
    assert!(
        wharf_testkit::git_http::git_http_backend_available(),
        "git http-backend is needed (Debian: git; ./scripts/test.sh installs it)"
    );
    let root = tempfile::tempdir().unwrap();
    let bare = root.path().join("apps.git");
    git2::Repository::init_bare(&bare).unwrap();
    // http-backend lets REMOTE_USER push only when the repository says so.
    bare_config(&bare, "http.receivepack", "true");
    let server =
        wharf_testkit::git_http::GitHttpServer::start(root.path(), "deployer", "s3cret-token")
            .await;
    let url = server.url("apps");
    let cfg = sync_config(
        RepositoryType::Git,
        &url,
        Some(("deployer", "s3cret-token")),
    );
    let (m, w) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let manager = Repository::open(&cfg, m.path(), m.path()).unwrap();
    let worker = Source::open(&cfg, w.path(), None).unwrap();
    exercise(manager, worker).await;

    // A wrong password is a clear error, and the password is never in it.
    let bad = sync_config(
        RepositoryType::Git,
        &server.url("apps"),
        Some(("deployer", "wrong")),
    );
    let d = tempfile::tempdir().unwrap();
    let e = Repository::open(&bad, d.path(), d.path())
        .unwrap()
        .head(0)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("refused the credentials"), "{e}");
    assert!(!e.contains("wrong") && !e.contains("s3cret"), "{e}");
}

fn bare_config(bare: &std::path::Path, key: &str, value: &str) {
    git2::Repository::open_bare(bare)
        .unwrap()
        .config()
        .unwrap()
        .set_str(key, value)
        .unwrap();
}
