//! git's smart HTTP protocol for libgit2, over rustls (reqwest), so that
//! `http://` and `https://` repositories work without OpenSSL or curl.
//!
//! libgit2 speaks the git protocol; this only moves its bytes: a `GET
//! …/info/refs?service=git-upload-pack` (or `-receive-pack`) for the ref
//! advertisement, then one `POST …/git-upload-pack` (or `-receive-pack`)
//! carrying everything libgit2 wrote, whose answer it reads back. Credentials
//! are looked up by repository URL from what [`set_credentials`] was given,
//! never put into a URL libgit2 sees (and may print).

use git2::transport::{Service, SmartSubtransport, SmartSubtransportStream, Transport};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::{Mutex, Once};
use std::time::Duration;

/// Credentials by repository URL (without a trailing slash).
static CREDENTIALS: Mutex<Option<HashMap<String, (String, String)>>> = Mutex::new(None);

/// Makes libgit2 use this transport for `http` and `https` (once per
/// process).
pub(crate) fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for scheme in ["http", "https"] {
            // SAFETY: git2 requires registration to be synchronized with the
            // creation of other transports; the `Once` makes this happen
            // before any repository is opened by this crate (`GitRepo::open`
            // calls it first) and only once.
            #[allow(unsafe_code)]
            let registered = unsafe {
                git2::transport::register(scheme, |remote| {
                    Transport::smart(remote, true, HttpTransport)
                })
            };
            if let Err(e) = registered {
                tracing::error!(scheme, error = %e.message(), "cannot register the git HTTP transport");
            }
        }
    });
}

/// Remembers the credentials for `url` (a git repository over HTTP).
pub(crate) fn set_credentials(url: &str, user: &str, password: &str) {
    let mut c = CREDENTIALS.lock().unwrap_or_else(|p| p.into_inner());
    c.get_or_insert_with(HashMap::new).insert(
        url.trim_end_matches('/').to_string(),
        (user.to_string(), password.to_string()),
    );
}

fn credentials_for(url: &str) -> Option<(String, String)> {
    let c = CREDENTIALS.lock().unwrap_or_else(|p| p.into_inner());
    let map = c.as_ref()?;
    map.iter()
        .filter(|(base, _)| url.starts_with(base.as_str()))
        .max_by_key(|(base, _)| base.len())
        .map(|(_, v)| v.clone())
}

struct HttpTransport;

impl SmartSubtransport for HttpTransport {
    fn action(
        &self,
        url: &str,
        action: Service,
    ) -> Result<Box<dyn SmartSubtransportStream>, git2::Error> {
        let (service, path, post) = match action {
            Service::UploadPackLs => ("upload-pack", "/info/refs?service=git-upload-pack", false),
            Service::UploadPack => ("upload-pack", "/git-upload-pack", true),
            Service::ReceivePackLs => {
                ("receive-pack", "/info/refs?service=git-receive-pack", false)
            }
            Service::ReceivePack => ("receive-pack", "/git-receive-pack", true),
        };
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .user_agent(concat!("git/2.0 (wharf ", env!("CARGO_PKG_VERSION"), ")"))
            .build()
            .map_err(|e| git2::Error::from_str(&format!("cannot build an HTTP client: {e}")))?;
        Ok(Box::new(HttpStream {
            client,
            repo: url.trim_end_matches('/').to_string(),
            url: format!("{}{path}", url.trim_end_matches('/')),
            service,
            post,
            request: Vec::new(),
            response: None,
        }))
    }

    fn close(&self) -> Result<(), git2::Error> {
        Ok(())
    }
}

struct HttpStream {
    client: reqwest::blocking::Client,
    repo: String,
    url: String,
    service: &'static str,
    post: bool,
    request: Vec<u8>,
    response: Option<reqwest::blocking::Response>,
}

fn io_err(message: String) -> io::Error {
    io::Error::other(message)
}

impl HttpStream {
    /// Sends the request (with everything written so far) and checks the
    /// answer is the git service's.
    fn send(&mut self) -> io::Result<reqwest::blocking::Response> {
        let mut req = if self.post {
            self.client
                .post(&self.url)
                .header(
                    "content-type",
                    format!("application/x-git-{}-request", self.service),
                )
                .header(
                    "accept",
                    format!("application/x-git-{}-result", self.service),
                )
                .body(std::mem::take(&mut self.request))
        } else {
            self.client.get(&self.url)
        };
        if let Some((user, password)) = credentials_for(&self.repo) {
            req = req.basic_auth(user, Some(password));
        }
        let resp = req
            .send()
            .map_err(|e| io_err(format!("{}: {e}", self.repo)))?;
        let status = resp.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(io_err(format!(
                "{}: the repository refused the credentials ({status})",
                self.repo
            )));
        }
        if !status.is_success() {
            return Err(io_err(format!("{}: {status} for {}", self.repo, self.url)));
        }
        let want = if self.post {
            format!("application/x-git-{}-result", self.service)
        } else {
            format!("application/x-git-{}-advertisement", self.service)
        };
        let got = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !got.starts_with(&want) {
            return Err(io_err(format!(
                "{}: not a git smart HTTP server (content type {got:?}, expected {want})",
                self.repo
            )));
        }
        Ok(resp)
    }
}

impl Read for HttpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.response.is_none() {
            self.response = Some(self.send()?);
        }
        self.response.as_mut().expect("just set").read(buf)
    }
}

impl Write for HttpStream {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.response.is_some() {
            return Err(io_err("git HTTP: a write after the answer".into()));
        }
        self.request.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
