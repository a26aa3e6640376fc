//! `wharf deploy FILE --context /x`: upload a component to the management
//! node, which validates and commits it, then follow its rollout across
//! the workers.

use super::client::{check_context, ApiFailure, Client, ManagerArgs};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use wharf_proto::api::{ChangeResponse, Rollout, RolloutState};

#[derive(clap::Args, Debug)]
pub struct Deploy {
    /// The component (.wasm) to deploy.
    file: PathBuf,

    /// Where to serve it, e.g. /hello (/ for the root).
    #[arg(long)]
    context: String,

    #[command(flatten)]
    manager: ManagerArgs,

    #[command(flatten)]
    rollout: RolloutArgs,

    /// Linear memory per instance, in MiB (at most the cluster's).
    #[arg(long)]
    memory_limit_mb: Option<u64>,

    /// Time one request may take, in ms (at most the cluster's).
    #[arg(long)]
    request_timeout_ms: Option<u64>,

    /// Instances that may run at once (at most the cluster's).
    #[arg(long)]
    max_instances: Option<u32>,
}

/// How a command that makes a revision follows its rollout.
#[derive(clap::Args, Debug, Clone)]
pub struct RolloutArgs {
    /// Return once the revision is committed; do not wait for the workers.
    #[arg(long)]
    no_wait: bool,

    /// How long to wait for every worker to serve the revision, in seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

const CHUNK: usize = 64 * 1024;

impl Deploy {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        check_context(&self.context)?;
        let bytes = std::fs::read(&self.file)
            .with_context(|| format!("reading {}", self.file.display()))?;
        let client = self.manager.client()?;
        let size = bytes.len() as u64;
        let bar = ProgressBar::new(size).with_style(
            ProgressStyle::with_template(
                "uploading {bytes}/{total_bytes} [{bar:30}] {bytes_per_sec}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            bytes.chunks(CHUNK).map(|c| Ok(c.to_vec())).collect();
        let progress = bar.clone();
        let stream = futures::stream::iter(chunks).map(move |c| {
            if let Ok(c) = &c {
                progress.inc(c.len() as u64);
            }
            c
        });
        let mut query: Vec<(&str, String)> =
            vec![("context", self.context.clone()), ("wait", "false".into())];
        for (k, v) in [
            (
                "memory_limit_mb",
                self.memory_limit_mb.map(|v| v.to_string()),
            ),
            (
                "request_timeout_ms",
                self.request_timeout_ms.map(|v| v.to_string()),
            ),
            ("max_instances", self.max_instances.map(|v| v.to_string())),
        ] {
            if let Some(v) = v {
                query.push((k, v));
            }
        }
        let req = client
            .request(reqwest::Method::POST, "/apps")
            .query(&query)
            .header(reqwest::header::CONTENT_TYPE, "application/wasm")
            .header(reqwest::header::CONTENT_LENGTH, size)
            .body(reqwest::Body::wrap_stream(stream));
        let result: anyhow::Result<ChangeResponse> = client.block(client.send(req));
        bar.finish_and_clear();
        let change = result.map_err(explain_no_worker)?;
        println!("{}", change.message);
        finish(&client, change, &self.rollout)
    }
}

use futures::StreamExt;

/// The seed's step 12: a deploy before any worker joined is an error, but
/// the revision is kept.
fn explain_no_worker(e: anyhow::Error) -> anyhow::Error {
    match e.downcast_ref::<ApiFailure>() {
        Some(f)
            if f.status == reqwest::StatusCode::SERVICE_UNAVAILABLE
                && f.body.revision.is_some() =>
        {
            anyhow::anyhow!("{}", f.body.error)
        }
        _ => e,
    }
}

/// Follows the rollout of a change (unless asked not to) and reports it.
pub(crate) fn finish(
    client: &Client,
    change: ChangeResponse,
    args: &RolloutArgs,
) -> anyhow::Result<ExitCode> {
    let rollout = if args.no_wait || change.rollout.complete {
        change.rollout
    } else {
        follow(client, change.revision, Duration::from_secs(args.timeout))?
    };
    report(&rollout);
    if args.no_wait || rollout.complete {
        return Ok(ExitCode::SUCCESS);
    }
    let failed = rollout
        .workers
        .iter()
        .any(|w| w.state == RolloutState::Failed);
    if failed {
        anyhow::bail!(
            "revision {} failed on some workers; they keep serving their previous revision",
            rollout.revision
        );
    }
    anyhow::bail!(
        "not every worker serves revision {} after {} s; `wharf apps list` shows where it stands",
        rollout.revision,
        args.timeout
    )
}

/// Polls the rollout of `revision` with a progress bar until every worker
/// serves it, one failed, or `timeout` passes.
fn follow(client: &Client, revision: u64, timeout: Duration) -> anyhow::Result<Rollout> {
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("rolling out revision {msg} [{bar:30}] {pos}/{len} workers")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_message(revision.to_string());
    let deadline = Instant::now() + timeout;
    let path = format!("/revisions/{revision}/rollout");
    loop {
        let r: Rollout = client.block(client.send(client.request(reqwest::Method::GET, &path)))?;
        bar.set_length(r.workers.len() as u64);
        bar.set_position(
            r.workers
                .iter()
                .filter(|w| w.state == RolloutState::Serving)
                .count() as u64,
        );
        let settled =
            !r.workers.is_empty() && r.workers.iter().all(|w| w.state != RolloutState::Pending);
        if r.complete || settled || Instant::now() >= deadline {
            bar.finish_and_clear();
            return Ok(r);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn report(r: &Rollout) {
    for w in &r.workers {
        let state = match w.state {
            RolloutState::Serving => format!("serving revision {}", w.revision),
            RolloutState::Pending => format!("still on revision {}", w.revision),
            RolloutState::Failed => format!(
                "FAILED: {} (still on revision {})",
                w.error.as_deref().unwrap_or("?"),
                w.revision
            ),
        };
        println!("  {:<40} {state}", w.node_id);
    }
    if r.complete && !r.workers.is_empty() {
        println!("revision {} is served by every worker", r.revision);
    }
}
