//! A git smart HTTP server for tests: `git http-backend` (from the git
//! package) behind a small HTTP server on 127.0.0.1, port 0, that asks
//! for one user and password (Basic), as a hosted git service would.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

pub struct GitHttpServer {
    pub addr: SocketAddr,
    /// Where the repositories are (`<root>/<name>.git`).
    pub root: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether `git http-backend` can be run.
pub fn git_http_backend_available() -> bool {
    Command::new("git")
        .arg("--exec-path")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join("git-http-backend"))
        .is_some_and(|p| p.exists())
}

impl GitHttpServer {
    /// Serves the bare repositories under `root`, for `user`/`password` only.
    pub async fn start(root: &Path, user: &str, password: &str) -> GitHttpServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let creds: Arc<(String, String, PathBuf)> =
            Arc::new((user.to_string(), password.to_string(), root.to_path_buf()));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    continue;
                };
                let creds = creds.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| cgi(creds.clone(), peer, req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        GitHttpServer {
            addr,
            root: root.to_path_buf(),
            task,
        }
    }

    /// `http://127.0.0.1:<port>/<name>.git`
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/{name}.git", self.addr)
    }
}

fn reply(status: u16, headers: &[(&str, String)], body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::builder().status(status);
    for (k, v) in headers {
        r = r.header(*k, v);
    }
    r.body(Full::new(Bytes::from(body))).expect("a response")
}

async fn cgi(
    creds: Arc<(String, String, PathBuf)>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    use base64::Engine;
    let encode = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let (user, password, root) = (&creds.0, &creds.1, &creds.2);
    let want = format!("Basic {}", encode(format!("{user}:{password}").as_bytes()));
    let given = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if given != want {
        return Ok(reply(
            401,
            &[("www-authenticate", "Basic realm=\"git\"".into())],
            b"who are you?\n".to_vec(),
        ));
    }
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let (user, root) = (user.clone(), root.clone());
    let out = tokio::task::spawn_blocking(move || {
        let mut child = Command::new("git")
            .arg("http-backend")
            .env("GIT_PROJECT_ROOT", &root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("PATH_INFO", &path)
            .env("QUERY_STRING", &query)
            .env("REQUEST_METHOD", &method)
            .env("CONTENT_TYPE", &content_type)
            .env("CONTENT_LENGTH", body.len().to_string())
            .env("REMOTE_USER", &user)
            .env("REMOTE_ADDR", peer.ip().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running git http-backend");
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(&body)
            .expect("feeding git");
        child.wait_with_output().expect("git http-backend")
    })
    .await
    .expect("the backend task");
    // CGI: headers, a blank line, the body.
    let raw = out.stdout;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((at, gap)) = split else {
        return Ok(reply(500, &[], out.stderr));
    };
    let head = String::from_utf8_lossy(&raw[..at]).to_string();
    let mut status = 200;
    let mut headers = vec![];
    for line in head.lines() {
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("status") {
                status = v
                    .trim()
                    .split(' ')
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(500);
            } else {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
    }
    let headers: Vec<(&str, String)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    Ok(reply(status, &headers, raw[at + gap..].to_vec()))
}
