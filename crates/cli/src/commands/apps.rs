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
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
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
                    "{:<24} {:>10}  {:<12}  {:<21} {:<10} WORKERS",
                    "CONTEXT", "SIZE", "SHA256", "DEPLOYED", "BY"
                );
                for a in &list.apps {
                    let serving = a.workers.iter().filter(|w| w.serving).count();
                    println!(
                        "{:<24} {:>10}  {:<12}  {:<21} {:<10} {serving}/{} serving",
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
                    "{:<9} {:<21} {:<12} {:<5} MESSAGE",
                    "REVISION", "CREATED", "AUTHOR", "APPS"
                );
                for r in &all {
                    println!(
                        "{:<9} {:<21} {:<12} {:<5} {}{}",
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

#[cfg(test)]
mod tests {
    #[test]
    fn times_read_as_utc_dates() {
        assert_eq!(super::when(0), "1970-01-01 00:00:00Z");
        assert_eq!(super::when(1_795_607_212_000), "2026-11-25 11:46:52Z");
    }
}
