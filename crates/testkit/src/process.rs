//! Runs the real `wharf` binary, collects its output, and prints it when
//! the test fails.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The `wharf` binary Cargo built for this test run. Integration tests of
/// the `wharf` package should pass `env!("CARGO_BIN_EXE_wharf")` instead;
/// this is for other crates: `target/<profile>/wharf` beside the test binary.
pub fn wharf_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    dir.join("wharf")
}

/// A running `wharf` process. Killed on drop; its output is printed on drop
/// if the test is panicking, so a failure shows what the process said.
pub struct WharfProcess {
    child: Option<Child>,
    output: Arc<Mutex<Vec<String>>>,
    name: String,
}

impl WharfProcess {
    /// Starts `bin` with `args`, with `envs` added to a cleaned environment
    /// (no `WHARF_*` variables leak in from the caller).
    pub fn start(bin: &Path, args: &[&str], envs: &[(&str, &str)], name: &str) -> WharfProcess {
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, _) in std::env::vars() {
            if k.starts_with("WHARF_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("WHARF_LOG", "info");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let output = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    output.lock().unwrap().push(line);
                }
            });
        }
        WharfProcess {
            child: Some(child),
            output,
            name: name.to_string(),
        }
    }

    /// Every line printed so far (stdout and stderr interleaved by arrival).
    pub fn output(&self) -> Vec<String> {
        self.output.lock().unwrap().clone()
    }

    /// Waits for a line containing `needle` and returns it.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> String {
        let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            crate::wait_until(
                &format!("{} to print {needle:?}", self.name),
                timeout,
                || self.output().into_iter().find(|l| l.contains(needle)),
            )
        }));
        match found {
            Ok(line) => line,
            Err(_) => panic!(
                "{} never printed {needle:?}; output:\n{}",
                self.name,
                self.output().join("\n")
            ),
        }
    }

    /// Counts lines containing every one of `needles`.
    pub fn count_lines(&self, needles: &[&str]) -> usize {
        self.output()
            .iter()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .count()
    }

    /// Waits for the node's "node listening" line and returns its
    /// `http`, `https` and `status` addresses.
    pub fn listening(&self, timeout: Duration) -> HashMap<String, SocketAddr> {
        let line = self.wait_for_line("listening", timeout);
        parse_addrs(&line)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{sig} failed");
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let child = self.child.as_mut().expect("running");
        let status = crate::wait_until(&format!("{} to exit", self.name), timeout, || {
            child.try_wait().ok().flatten()
        });
        self.child = None;
        status.code()
    }
}

/// Parses `key=ip:port` tokens out of a log line (with or without ANSI colour).
pub fn parse_addrs(line: &str) -> HashMap<String, SocketAddr> {
    let mut out = HashMap::new();
    for token in line.split_whitespace() {
        let token: String = strip_ansi(token);
        if let Some((k, v)) = token.split_once('=') {
            if let Ok(addr) = v.trim_matches('"').parse::<SocketAddr>() {
                out.insert(k.to_string(), addr);
            }
        }
    }
    out
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Drop for WharfProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "----- output of {} -----\n{}\n-----",
                self.name,
                self.output().join("\n")
            );
        }
    }
}
