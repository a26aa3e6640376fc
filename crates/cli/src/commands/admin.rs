//! `wharf admin passwd`: sets an admin password in a management node's
//! data directory (the running manager picks it up at once and ends the
//! user's sessions).

use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use wharf_config::NodeConfig;
use wharf_node::admin::users::{UserStore, SUPER_ADMIN};

#[derive(clap::Subcommand, Debug)]
pub enum Admin {
    /// Set the password of an admin user (asks for it twice).
    Passwd(Passwd),
}

#[derive(clap::Args, Debug)]
pub struct Passwd {
    /// The manager's configuration file; its data_dir holds the accounts.
    #[arg(long, short, env = "WHARF_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// The user whose password to set.
    #[arg(long, default_value = SUPER_ADMIN)]
    user: String,

    /// Read the new password from standard input instead of asking for it.
    #[arg(long)]
    password_stdin: bool,
}

impl Admin {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Admin::Passwd(p) => p.run(),
        }
    }
}

impl Passwd {
    fn run(self) -> anyhow::Result<ExitCode> {
        let config = match &self.config {
            Some(path) => NodeConfig::load_with_env(path, &super::config_env()),
            None => NodeConfig::defaults_with(&super::config_env(), Default::default()),
        }
        .map_err(|errs| anyhow::anyhow!("invalid configuration:\n{errs}"))?;
        let store = UserStore::open(&config.server.data_dir);
        let existing = store.find(&self.user)?;
        if existing.is_none() && self.user != SUPER_ADMIN {
            anyhow::bail!(
                "no admin user {:?} in {}",
                self.user,
                store.path().display()
            );
        }
        let password = if self.password_stdin {
            super::login::read_password_stdin()?
        } else {
            let first = rpassword::prompt_password(format!("new password for {}: ", self.user))
                .context("reading the password (no terminal? use --password-stdin)")?;
            let again = rpassword::prompt_password("again: ").context("reading the password")?;
            if first != again {
                anyhow::bail!("the two passwords differ; nothing changed");
            }
            first
        };
        let tenant = existing.and_then(|u| u.tenant);
        store.set_password(&self.user, tenant.as_deref(), &password)?;
        println!(
            "password of {} changed in {}; their sessions have ended",
            self.user,
            store.path().display()
        );
        Ok(ExitCode::SUCCESS)
    }
}
