//! A real Subversion server for tests: a fresh repository served by
//! `svnserve` on 127.0.0.1, on a port the system picked, with one user
//! whose password is made up per run.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct SvnServer {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub user: String,
    pub password: String,
    child: Child,
}

/// Whether `svn`, `svnadmin` and `svnserve` can be run (Debian `subversion`).
pub fn svn_available() -> bool {
    ["svn", "svnadmin", "svnserve"].iter().all(|b| {
        Command::new(b)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

impl SvnServer {
    /// Creates a repository and serves it; read and write need the user.
    pub fn start() -> SvnServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo");
        let ok = Command::new("svnadmin")
            .arg("create")
            .arg(&repo)
            .status()
            .expect("running svnadmin (Debian package subversion)");
        assert!(ok.success(), "svnadmin create failed");
        let password = format!("pw-{:x}", std::process::id() as u64 * 7919 + nanos());
        std::fs::write(
            repo.join("conf/svnserve.conf"),
            "[general]\nanon-access = none\nauth-access = write\npassword-db = passwd\nrealm = wharf-test\n",
        )
        .unwrap();
        std::fs::write(
            repo.join("conf/passwd"),
            format!("[users]\nwharf = {password}\n"),
        )
        .unwrap();
        let child = Command::new("svnserve")
            .args([
                "-d",
                "--foreground",
                "--listen-host",
                "127.0.0.1",
                "--listen-port",
                "0",
                "-r",
            ])
            .arg(&repo)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting svnserve");
        let addr = crate::wait_until("svnserve to listen", Duration::from_secs(20), || {
            listening_tcp(child.id()).into_iter().next()
        });
        SvnServer {
            url: format!("svn://{addr}"),
            user: "wharf".into(),
            password,
            dir,
            child,
        }
    }

    /// Runs `svn` as the test user; returns its standard output.
    pub fn svn(&self, args: &[&str]) -> String {
        let out = Command::new("svn")
            .args([
                "--non-interactive",
                "--no-auth-cache",
                "--username",
                &self.user,
                "--password",
                &self.password,
            ])
            .args(args)
            .output()
            .expect("running svn");
        assert!(
            out.status.success(),
            "svn {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    pub fn repo_path(&self) -> std::path::PathBuf {
        self.dir.path().join("repo")
    }
}

impl Drop for SvnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64)
}

/// The TCP addresses process `pid` listens on, read from `/proc`: the
/// inodes of its sockets matched against the kernel's listening sockets.
/// (How a test learns the port a server picked for itself on port 0.)
pub fn listening_tcp(pid: u32) -> Vec<SocketAddr> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let target = std::fs::read_link(e.path()).ok()?;
            let t = target.to_str()?;
            Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let mut out = vec![];
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(Path::new(table)) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address, state 0A = LISTEN, inode in column 10.
            if f.len() > 9 && f[3] == "0A" && inodes.iter().any(|i| i == f[9]) {
                if let Some(addr) = parse_proc_addr(f[1]) {
                    out.push(addr);
                }
            }
        }
    }
    out
}

fn parse_proc_addr(s: &str) -> Option<SocketAddr> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    if ip.len() == 8 {
        let n = u32::from_str_radix(ip, 16).ok()?;
        Some(SocketAddr::from((n.to_le_bytes(), port)))
    } else {
        let mut bytes = [0u8; 16];
        for (i, chunk) in bytes.chunks_mut(4).enumerate() {
            let word = u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok()?;
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        Some(SocketAddr::from((bytes, port)))
    }
}
