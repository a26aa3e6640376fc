//! `wharf cluster up`: a whole local cluster — a load balancer, a manager
//! and N workers, each its own `wharf` process — with a generated cluster
//! secret and admin password, the builtin repository, distinct port
//! offsets, and the example application deployed through the manager's
//! admin API (by way of the load balancer), until Ctrl-C.

use anyhow::{bail, Context};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct Up {
    /// Worker nodes to start.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    workers: u16,

    /// Where the members keep their configuration and data (created if
    /// missing; reused on the next start).
    #[arg(long, value_name = "DIR", default_value = "./wharf-cluster")]
    dir: PathBuf,

    /// Added to every port: the load balancer listens on 8280/8243 plus
    /// this, the manager and the workers on 9763/9443 plus this plus 1, 2, ….
    #[arg(long, default_value_t = 0)]
    port_offset: u16,

    /// Let the operating system pick every port (for tests and sandboxes);
    /// the ports in use are printed.
    #[arg(long)]
    ephemeral_ports: bool,
}

/// How long the members may take to start and find each other.
const START_LIMIT: Duration = Duration::from_secs(120);

const DOMAIN: &str = "wharf.domain";
const WORKER_HOSTS: &str = "localhost, 127.0.0.1";
const MGT_HOST: &str = "mgt.localhost";

struct Member {
    name: String,
    child: Child,
}

/// A line from a member's output, for the supervisor.
struct Line {
    member: String,
    text: String,
}

impl Up {
    fn port(&self, base: u16, index: u16) -> anyhow::Result<u16> {
        if self.ephemeral_ports {
            return Ok(0);
        }
        base.checked_add(self.port_offset)
            .and_then(|p| p.checked_add(index))
            .context("--port-offset puts a port above 65535")
    }

    pub fn run(self) -> anyhow::Result<ExitCode> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let dir = self
            .dir
            .canonicalize()
            .with_context(|| format!("resolving {}", self.dir.display()))?;
        let secret = dir.join("cluster.secret");
        ensure_secret(&secret, || {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
            Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
        })?;
        let password_file = dir.join("admin.password");
        ensure_secret(&password_file, || {
            Ok(wharf_node::admin::users::generate_password())
        })?;
        let bin = std::env::current_exe().context("finding the wharf binary")?;

        // Signals first: a Ctrl-C during start-up stops what has started.
        let stop = on_signals()?;
        let chan = mpsc::channel::<Line>();
        let mut members: Vec<Member> = Vec::new();
        let result = self.start_all(
            &dir,
            &bin,
            &secret,
            &password_file,
            &chan,
            &mut members,
            &stop,
        );
        let rx = chan.1;
        match result {
            Ok(summary) => {
                println!("{summary}");
                let _ = std::io::stdout().flush();
                supervise(&rx, &mut members, &stop);
                stop_all(&mut members);
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                stop_all(&mut members);
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn start_all(
        &self,
        dir: &Path,
        bin: &Path,
        secret: &Path,
        password_file: &Path,
        (tx, rx): &(mpsc::Sender<Line>, mpsc::Receiver<Line>),
        members: &mut Vec<Member>,
        stop: &AtomicBool,
    ) -> anyhow::Result<String> {
        let bind = if self.ephemeral_ports {
            "127.0.0.1"
        } else {
            "0.0.0.0"
        };
        let admin_password = std::fs::read_to_string(password_file)
            .with_context(|| format!("reading {}", password_file.display()))?
            .trim()
            .to_string();
        // The load balancer first: the nodes name it as their well-known member.
        let lb_dir = dir.join("lb");
        std::fs::create_dir_all(&lb_dir)?;
        std::fs::write(
            lb_dir.join("loadbalancer.conf"),
            format!(
                "# Written by `wharf cluster up`.\nservices {{\n  wharf {{\n    domains {{\n      \
                 {DOMAIN} {{ hosts {MGT_HOST}; sub_domain mgt; tenant_range *; }}\n      \
                 {DOMAIN} {{ hosts {WORKER_HOSTS}; sub_domain worker; tenant_range *; }}\n    }}\n  }}\n}}\n"
            ),
        )?;
        let (lb_http, lb_https) = (self.port(8280, 0)?, self.port(8243, 0)?);
        std::fs::write(
            lb_dir.join("lb.toml"),
            format!(
                "# Written by `wharf cluster up`.\n[lb]\ndata_dir = \"data\"\nservices_file = \"loadbalancer.conf\"\n\
                 [lb.http]\nbind = \"{bind}\"\nport = {lb_http}\n[lb.https]\nbind = \"{bind}\"\nport = {lb_https}\n\
                 [lb.status]\nport = {}\n\
                 [clustering]\nenabled = true\ndomain = \"{DOMAIN}\"\nlocal_member_port = {}\nsecret_file = {:?}\n",
                self.port(9800, 0)?,
                self.port(4000, 0)?,
                secret.display().to_string(),
            ),
        )?;
        members.push(spawn(
            bin,
            "lb",
            &lb_dir,
            &["lb", "--config", "lb.toml"],
            &[],
            tx,
        )?);
        let mut seen = Seen::default();
        let lb_addrs = wait_for(
            rx,
            &mut seen,
            members,
            stop,
            "lb",
            "load balancer listening",
        )?;
        let lb_member =
            wait_for(rx, &mut seen, members, stop, "lb", "joining the cluster")?["address"];
        let (lb_http, lb_https, lb_status) =
            (lb_addrs["http"], lb_addrs["https"], lb_addrs["status"]);

        let nodes: Vec<(String, &str, u16)> = std::iter::once(("manager".to_string(), "mgt", 1))
            .chain((1..=self.workers).map(|i| (format!("worker-{i}"), "worker", i + 1)))
            .collect();
        for (name, sub_domain, index) in &nodes {
            let node_dir = dir.join(name);
            std::fs::create_dir_all(&node_dir)?;
            let proxy = if self.ephemeral_ports {
                format!(
                    "[server.http]\nbind = \"{bind}\"\nport = 0\nproxy_port = {}\n\
                     [server.https]\nbind = \"{bind}\"\nport = 0\nproxy_port = {}\n[server.status]\nport = 0\n",
                    lb_http.port(),
                    lb_https.port()
                )
            } else {
                format!(
                    "[server.http]\nbind = \"{bind}\"\nproxy_port = {}\n[server.https]\nbind = \"{bind}\"\nproxy_port = {}\n",
                    lb_http.port(),
                    lb_https.port()
                )
            };
            let offset = if self.ephemeral_ports {
                0
            } else {
                self.port_offset
                    .checked_add(*index)
                    .context("--port-offset is too large")?
            };
            let member_port = if self.ephemeral_ports { 0 } else { 4100 };
            std::fs::write(
                node_dir.join("wharf.toml"),
                format!(
                    "# Written by `wharf cluster up`.\n[server]\ndata_dir = \"data\"\nport_offset = {offset}\n\
                     host_name = \"localhost\"\nmgt_host_name = \"{MGT_HOST}\"\n{proxy}\
                     [clustering]\nenabled = true\ndomain = \"{DOMAIN}\"\nlocal_member_port = {member_port}\n\
                     members = [\"{lb_member}\"]\nsecret_file = {:?}\n\
                     [clustering.properties]\nsubDomain = \"{sub_domain}\"\n",
                    secret.display().to_string(),
                ),
            )?;
            let mut args = vec!["server", "--config", "wharf.toml"];
            let mut env = vec![];
            if *sub_domain == "worker" {
                args.push("--worker-node");
            } else {
                env.push((wharf_config::ADMIN_PASSWORD_ENV, admin_password.clone()));
            }
            members.push(spawn(bin, name, &node_dir, &args, &env, tx)?);
        }
        for (name, _, _) in &nodes {
            wait_for(rx, &mut seen, members, stop, name, "node listening")?;
        }

        // Ready when the load balancer has every member in its pools; then
        // the example is deployed through the manager's admin API, by way
        // of the load balancer's management host, and served by the workers.
        let workers = self.workers as u64;
        let deadline = Instant::now() + START_LIMIT;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let lb_cert = dir.join("lb/data/tls/cert.pem");
        let client = reqwest::Client::new();
        let wait = |what: &str,
                    check: &mut dyn FnMut() -> Option<()>,
                    seen: &mut Seen,
                    members: &mut Vec<Member>|
         -> anyhow::Result<()> {
            loop {
                drain(rx, seen);
                check_alive(members, stop)?;
                if check().is_some() {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    bail!(
                        "{what} did not happen within {} s; see the members' output above",
                        START_LIMIT.as_secs()
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        };
        wait(
            "the load balancer routing to every member",
            &mut || {
                rt.block_on(async {
                    let routes: serde_json::Value = client
                        .get(format!("http://{lb_status}/lb/routes"))
                        .send()
                        .await
                        .ok()?
                        .json()
                        .await
                        .ok()?;
                    let live = |sd: &str| {
                        routes.as_array().and_then(|ps| {
                            ps.iter()
                                .find(|p| p["sub_domain"] == sd)
                                .and_then(|p| p["live"].as_u64())
                        })
                    };
                    (live("mgt")? >= 1 && live("worker")? >= workers).then_some(())
                })
            },
            &mut seen,
            members,
        )?;
        let pem = std::fs::read(&lb_cert).with_context(|| {
            format!(
                "reading the load balancer's certificate {}",
                lb_cert.display()
            )
        })?;
        let admin = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem)?)
            .resolve(MGT_HOST, lb_https)
            .build()?;
        let deploy_url = format!(
            "https://{MGT_HOST}:{}/api/v1/apps?context=/greeter",
            lb_https.port()
        );
        let mut deployed = None;
        wait(
            "deploying the example through the manager",
            &mut || {
                let r = rt.block_on(async {
                    admin
                        .post(&deploy_url)
                        .basic_auth("admin", Some(&admin_password))
                        .header("content-type", "application/wasm")
                        .body(crate::example::GREETER)
                        .send()
                        .await
                });
                match r {
                    Ok(resp) if resp.status().is_success() => {
                        deployed = rt
                            .block_on(resp.json::<wharf_proto::api::ChangeResponse>())
                            .ok();
                        Some(())
                    }
                    _ => None,
                }
            },
            &mut seen,
            members,
        )?;
        wait(
            "the workers serving the example",
            &mut || {
                rt.block_on(async {
                    let r = client
                        .get(format!("http://{lb_http}/greeter/"))
                        .header("host", "localhost")
                        .send()
                        .await
                        .ok()?;
                    r.status().is_success().then_some(())
                })
            },
            &mut seen,
            members,
        )?;
        if let Some(d) = &deployed {
            tracing::info!(revision = d.revision, "{}", d.message);
        }

        let (hp, sp) = (lb_http.port(), lb_https.port());
        let cert = dir.join("lb/data/tls/cert.pem");
        Ok(format!(
            "\nWharf cluster is up: a load balancer, a manager and {workers} worker(s), in {dir}\n\n  \
             application  http://localhost:{hp}/greeter/\n               \
             https://localhost:{sp}/greeter/   (self-signed: curl --cacert {cert})\n  \
             console      https://{MGT_HOST}:{sp}/console/   (the management console; trust {cert})\n  \
             manager      https://{MGT_HOST}:{sp}/api/v1   (admin API, through the load balancer)\n  \
             admin        user admin, password {admin_password}   (kept in {password_file})\n  \
             LB status    http://{lb_status}/lb/routes and /metrics\n  \
             members      wharf cluster members --status {lb_status_manager}\n  \
             secret       {secret} (cluster traffic; keep it private)\n\n  \
             try:  curl http://localhost:{hp}/greeter/hello\n  \
             deploy:  WHARF_PASSWORD={admin_password} wharf deploy app.wasm --context /app \\\n           \
             --manager https://{MGT_HOST}:{sp} --ca-cert {cert}\n\n\
             Ctrl-C stops the cluster.",
            password_file = password_file.display(),
            dir = dir.display(),
            cert = cert.display(),
            secret = secret.display(),
            lb_status_manager = seen
                .addrs
                .get("manager")
                .and_then(|a| a.get("status"))
                .map_or("127.0.0.1:9901".to_string(), |a| a.to_string()),
        ))
    }
}

/// Writes a fresh secret from `make` (mode 0600) unless one is there.
fn ensure_secret(path: &Path, make: impl FnOnce() -> anyhow::Result<String>) -> anyhow::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let hex = make()?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(hex.as_bytes())?;
    Ok(())
}

fn spawn(
    bin: &Path,
    name: &str,
    dir: &Path,
    args: &[&str],
    env: &[(&str, String)],
    tx: &mpsc::Sender<Line>,
) -> anyhow::Result<Member> {
    let mut child = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .env_remove("WHARF_CONFIG")
        .env_remove("WHARF_LB_CONFIG")
        .env_remove(wharf_config::SECRET_ENV)
        .env_remove(wharf_config::ADMIN_PASSWORD_ENV)
        .env_remove(wharf_config::REPOSITORY_PASSWORD_ENV)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a Ctrl-C in the terminal reaches only
        // the supervisor, which stops each member once, gracefully.
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    for stream in [
        Box::new(child.stdout.take().expect("piped")) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().expect("piped")),
    ] {
        let (tx, member) = (tx.clone(), name.to_string());
        std::thread::spawn(move || {
            for text in BufReader::new(stream).lines().map_while(Result::ok) {
                eprintln!("[{member}] {text}");
                if tx
                    .send(Line {
                        member: member.clone(),
                        text,
                    })
                    .is_err()
                {
                    return;
                }
            }
        });
    }
    tracing::info!(member = name, pid = child.id(), "started");
    Ok(Member {
        name: name.to_string(),
        child,
    })
}

/// `key=addr` pairs of a log line.
fn addrs(text: &str) -> HashMap<String, SocketAddr> {
    text.split_whitespace()
        .filter_map(|t| {
            let (k, v) = t.split_once('=')?;
            let v = v.trim_matches('"');
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// What the members printed during start-up.
#[derive(Default)]
struct Seen {
    addrs: HashMap<String, HashMap<String, SocketAddr>>,
    lines: Vec<Line>,
}

impl Seen {
    fn note(&mut self, line: Line) {
        self.addrs
            .entry(line.member.clone())
            .or_default()
            .extend(addrs(&line.text));
        self.lines.push(line);
    }

    fn find(&self, member: &str, needle: &str) -> Option<HashMap<String, SocketAddr>> {
        self.lines
            .iter()
            .find(|l| l.member == member && l.text.contains(needle))
            .map(|l| addrs(&l.text))
    }
}

fn drain(rx: &mpsc::Receiver<Line>, seen: &mut Seen) {
    while let Ok(line) = rx.try_recv() {
        seen.note(line);
    }
}

/// Waits for `member` to print a line containing `needle`; returns the
/// addresses on that line.
fn wait_for(
    rx: &mpsc::Receiver<Line>,
    seen: &mut Seen,
    members: &mut [Member],
    stop: &AtomicBool,
    member: &str,
    needle: &str,
) -> anyhow::Result<HashMap<String, SocketAddr>> {
    let deadline = Instant::now() + START_LIMIT;
    loop {
        if let Some(found) = seen.find(member, needle) {
            return Ok(found);
        }
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => seen.note(line),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!("lost the members' output"),
        }
        check_alive(members, stop)?;
        if Instant::now() > deadline {
            bail!(
                "{member} did not report {needle:?} within {} s",
                START_LIMIT.as_secs()
            );
        }
    }
}

fn check_alive(members: &mut [Member], stop: &AtomicBool) -> anyhow::Result<()> {
    if stop.load(Ordering::SeqCst) {
        bail!("interrupted during start-up");
    }
    for m in members.iter_mut() {
        if let Ok(Some(status)) = m.child.try_wait() {
            bail!(
                "{} exited during start-up ({status}); see its output above",
                m.name
            );
        }
    }
    Ok(())
}

/// A flag set by the first SIGINT or SIGTERM.
fn on_signals() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the signal handler")?;
    // Install the handlers before returning, so no signal is missed.
    let (mut term, mut int) = rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        Ok::<_, std::io::Error>((
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
        ))
    })?;
    std::thread::spawn(move || {
        rt.block_on(async {
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        });
        flag.store(true, Ordering::SeqCst);
    });
    Ok(stop)
}

/// Runs until a signal; reports members that exit on their own.
fn supervise(rx: &mpsc::Receiver<Line>, members: &mut [Member], stop: &AtomicBool) {
    let mut exited = vec![false; members.len()];
    while !stop.load(Ordering::SeqCst) {
        while rx.try_recv().is_ok() {}
        for (i, m) in members.iter_mut().enumerate() {
            if !exited[i] {
                if let Ok(Some(status)) = m.child.try_wait() {
                    exited[i] = true;
                    eprintln!(
                        "wharf cluster up: {} exited ({status}); the others keep running",
                        m.name
                    );
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("wharf cluster up: stopping the cluster");
}

/// SIGTERM to every member (each drains), then waits; what is still
/// running after the grace period is killed.
fn stop_all(members: &mut [Member]) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    for m in members.iter() {
        let _ = kill(Pid::from_raw(m.child.id() as i32), Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(40);
    for m in members.iter_mut() {
        loop {
            match m.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    eprintln!(
                        "wharf cluster up: {} did not stop in time; killing it",
                        m.name
                    );
                    let _ = m.child.kill();
                    let _ = m.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}
