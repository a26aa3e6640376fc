//! `wharf apps list | undeploy | history | rollback`: the applications of
//! a management node and their revisions.

use super::client::ManagerArgs;
use super::deploy::{finish, RolloutArgs};
use std::process::ExitCode;
use wharf_proto::api::{AppList, ChangeResponse, RevisionInfo};

#[derive(clap::Subcommand, Debug)]
pub enum Apps {
    /// The applications of the current revision and what each worker serves.
    List {
        #[command(flatten)]
        manager: ManagerArgs,
        /// Print the manager's JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// Undeploy the application at a context path (a new revision without it).
    Undeploy {
        #[arg(long)]
        context: String,
        #[command(flatten)]
        manager: ManagerArgs,
        #[command(flatten)]
        rollout: RolloutArgs,
    },
    /// Every revision, newest first.
    History {
        #[command(flatten)]
        manager: ManagerArgs,
        #[arg(long)]
        json: bool,
    },
    /// Make a new revision with the applications of an earlier one.
    Rollback {
        /// The revision to go back to.
        revision: u64,
        #[command(flatten)]
        manager: ManagerArgs,
        #[command(flatten)]
        rollout: RolloutArgs,
    },
}

fn when(ms: u64) -> String {
    wharf_proto::api::utc(ms)
}

impl Apps {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Apps::List { manager, json } => {
                let client = manager.client()?;
                let list: AppList =
                    client.block(client.send(client.request(reqwest::Method::GET, "/apps")))?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&list)?);
                    return Ok(ExitCode::SUCCESS);
                }
                println!("revision {}", list.revision);
                println!(
                    "{:<24} {:>10}  {:<12}  {:<23} {:<10} WORKERS",
                    "CONTEXT", "SIZE", "SHA256", "DEPLOYED", "BY"
                );
                for a in &list.apps {
                    let serving = a.workers.iter().filter(|w| w.serving).count();
                    println!(
                        "{:<24} {:>10}  {:<12}  {:<23} {:<10} {serving}/{} serving",
                        a.context,
                        a.size,
                        &a.sha256[..12.min(a.sha256.len())],
                        when(a.deployed_at_ms),
                        a.deployed_by,
                        a.workers.len()
                    );
                }
                for w in &list.rollout.workers {
                    println!("  worker {:<40} revision {}", w.node_id, w.revision);
                }
                Ok(ExitCode::SUCCESS)
            }
            Apps::Undeploy {
                context,
                manager,
                rollout,
            } => {
                let client = manager.client()?;
                let req = client
                    .request(reqwest::Method::DELETE, "/apps")
                    .query(&[("context", context.as_str()), ("wait", "false")]);
                let change: ChangeResponse = client.block(client.send(req))?;
                println!("{}", change.message);
                finish(&client, change, &rollout)
            }
            Apps::History { manager, json } => {
                let client = manager.client()?;
                let all: Vec<RevisionInfo> = client
                    .block(client.send(client.request(reqwest::Method::GET, "/revisions")))?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&all)?);
                    return Ok(ExitCode::SUCCESS);
                }
                println!(
                    "{:<9} {:<23} {:<12} {:<5} MESSAGE",
                    "REVISION", "CREATED", "AUTHOR", "APPS"
                );
                for r in &all {
                    println!(
                        "{:<9} {:<23} {:<12} {:<5} {}{}",
                        r.revision,
                        when(r.created_at_ms),
                        r.author,
                        r.apps.len(),
                        r.message,
                        if r.current { "  (current)" } else { "" }
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            Apps::Rollback {
                revision,
                manager,
                rollout,
            } => {
                let client = manager.client()?;
                let req = client
                    .request(
                        reqwest::Method::POST,
                        &format!("/revisions/{revision}/rollback"),
                    )
                    .query(&[("wait", "false")]);
                let change: ChangeResponse = client.block(client.send(req))?;
                println!("{}", change.message);
                finish(&client, change, &rollout)
            }
        }
    }
}
