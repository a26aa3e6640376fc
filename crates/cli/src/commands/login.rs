//! `wharf login` / `wharf logout`: a session with a management node's admin
//! API, kept in ~/.config/wharf/credentials.json (mode 0600).

use super::client::ManagerArgs;
use anyhow::Context;
use std::io::BufRead;
use std::process::ExitCode;
use wharf_proto::api::{LoginRequest, LoginResponse};

#[derive(clap::Args, Debug)]
pub struct Login {
    #[command(flatten)]
    manager: ManagerArgs,

    /// Read the password from standard input instead of asking for it.
    #[arg(long)]
    password_stdin: bool,
}

#[derive(clap::Args, Debug)]
pub struct Logout {
    #[command(flatten)]
    manager: ManagerArgs,
}

/// One line of standard input, without its line ending.
pub(crate) fn read_password_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// The password: from WHARF_PASSWORD, standard input, or a prompt.
pub(crate) fn read_password(from_stdin: bool, prompt: &str) -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("WHARF_PASSWORD") {
        return Ok(p);
    }
    if from_stdin {
        return read_password_stdin();
    }
    rpassword::prompt_password(prompt)
        .context("reading the password (no terminal? use --password-stdin)")
}

impl Login {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let password = read_password(
            self.password_stdin,
            &format!(
                "password for {} at {}: ",
                self.manager.user,
                self.manager.base()
            ),
        )?;
        let client = self.manager.unauthenticated()?;
        let req = client
            .request(reqwest::Method::POST, "/login")
            .json(&LoginRequest {
                user: self.manager.user.clone(),
                password,
            });
        let resp: LoginResponse = client.block(client.send(req))?;
        let path = self
            .manager
            .save_session(&resp.user, &resp.token, resp.expires_in_s)?;
        println!(
            "signed in to {} as {}{} for {} min (session kept in {})",
            self.manager.base(),
            resp.user,
            resp.tenant
                .map(|t| format!(" (tenant {t})"))
                .unwrap_or_default(),
            resp.expires_in_s / 60,
            path.display()
        );
        Ok(ExitCode::SUCCESS)
    }
}

impl Logout {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let client = self.manager.client()?;
        let req = client.request(reqwest::Method::POST, "/logout");
        let _: serde_json::Value = client.block(client.send(req)).unwrap_or_default();
        self.manager.forget_session()?;
        println!("signed out of {}", self.manager.base());
        Ok(ExitCode::SUCCESS)
    }
}
