//! `wharf tenant …`: the super admin's tenant management (the seed's
//! multi-tenant cluster): create, list, deactivate, activate, delete, set
//! limits and configuration values.

use super::client::ManagerArgs;
use std::collections::BTreeMap;
use std::process::ExitCode;
use wharf_proto::api::{CreateTenant, CreatedTenant, TenantConfig, TenantInfo, TenantLimitsPatch};

#[derive(clap::Args, Debug, Clone)]
pub struct TenantLimitArgs {
    /// Applications the tenant may have deployed.
    #[arg(long)]
    max_apps: Option<u32>,
    /// Memory per instance of its applications, in MiB.
    #[arg(long)]
    memory_limit_mb: Option<u64>,
    /// Instances of its applications at once, per node.
    #[arg(long)]
    max_instances: Option<u32>,
    /// Requests per second, per node (0: no limit).
    #[arg(long)]
    requests_per_second: Option<u32>,
}

impl TenantLimitArgs {
    fn patch(&self) -> TenantLimitsPatch {
        TenantLimitsPatch {
            max_apps: self.max_apps,
            memory_limit_mb: self.memory_limit_mb,
            max_instances: self.max_instances,
            requests_per_second: self.requests_per_second,
        }
    }
}

#[derive(clap::Subcommand, Debug)]
pub enum Tenant {
    /// Create a tenant and its administrator (admin@DOMAIN).
    Create {
        /// The tenant's domain, e.g. example.com: its applications are
        /// served under /t/DOMAIN/.
        domain: String,
        /// Read the tenant admin's password from standard input; without
        /// it one is made up and printed once.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        limits: TenantLimitArgs,
        #[command(flatten)]
        manager: ManagerArgs,
    },
    /// Every tenant.
    List {
        #[command(flatten)]
        manager: ManagerArgs,
        #[arg(long)]
        json: bool,
    },
    /// Stop serving a tenant's applications and refuse its admin.
    Deactivate {
        domain: String,
        #[command(flatten)]
        manager: ManagerArgs,
    },
    /// Serve a deactivated tenant again.
    Activate {
        domain: String,
        #[command(flatten)]
        manager: ManagerArgs,
    },
    /// Delete a tenant and its admin (its id is never given again; its
    /// revisions stay in the repository).
    Delete {
        domain: String,
        #[command(flatten)]
        manager: ManagerArgs,
    },
    /// Set a tenant's limits (what is not given keeps its value).
    Limits {
        domain: String,
        #[command(flatten)]
        limits: TenantLimitArgs,
        #[command(flatten)]
        manager: ManagerArgs,
    },
    /// Set a tenant's configuration values (environment variables only its
    /// applications see), replacing the previous ones.
    Config {
        domain: String,
        /// NAME=VALUE, repeated.
        #[arg(value_name = "NAME=VALUE")]
        values: Vec<String>,
        #[command(flatten)]
        manager: ManagerArgs,
    },
}

fn show(t: &TenantInfo) {
    let l = &t.limits;
    println!(
        "{:<6} {:<28} {:<9} apps≤{:<5} mem≤{}MiB instances≤{} rps≤{}  admin {}{}",
        t.id,
        t.domain,
        if t.active { "active" } else { "inactive" },
        l.max_apps,
        l.memory_limit_mb,
        l.max_instances,
        if l.requests_per_second == 0 {
            "∞".to_string()
        } else {
            l.requests_per_second.to_string()
        },
        t.admin,
        if t.config_keys.is_empty() {
            String::new()
        } else {
            format!("  config {}", t.config_keys.join(","))
        }
    );
}

impl Tenant {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        use reqwest::Method;
        match self {
            Tenant::Create {
                domain,
                password_stdin,
                limits,
                manager,
            } => {
                let password = if password_stdin {
                    Some(super::login::read_password_stdin()?)
                } else {
                    None
                };
                let client = manager.client()?;
                let req = client
                    .request(Method::POST, "/tenants")
                    .json(&CreateTenant {
                        domain,
                        password,
                        limits: limits.patch(),
                    });
                let created: CreatedTenant = client.block(client.send(req))?;
                println!(
                    "created tenant {} (id {}); its admin is {}",
                    created.tenant.domain, created.tenant.id, created.admin_user
                );
                if let Some(p) = created.admin_password {
                    println!("  password (shown only this once): {p}");
                }
                println!(
                    "  its applications are served under /t/{}/",
                    created.tenant.domain
                );
            }
            Tenant::List { manager, json } => {
                let client = manager.client()?;
                let all: Vec<TenantInfo> =
                    client.block(client.send(client.request(Method::GET, "/tenants")))?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&all)?);
                } else {
                    for t in &all {
                        show(t);
                    }
                }
            }
            Tenant::Deactivate { domain, manager } => {
                let client = manager.client()?;
                let path = format!("/tenants/{domain}/deactivate");
                let t: TenantInfo =
                    client.block(client.send(client.request(Method::POST, &path)))?;
                show(&t);
            }
            Tenant::Activate { domain, manager } => {
                let client = manager.client()?;
                let path = format!("/tenants/{domain}/activate");
                let t: TenantInfo =
                    client.block(client.send(client.request(Method::POST, &path)))?;
                show(&t);
            }
            Tenant::Delete { domain, manager } => {
                let client = manager.client()?;
                let path = format!("/tenants/{domain}");
                let _: serde_json::Value =
                    client.block(client.send(client.request(Method::DELETE, &path)))?;
                println!("deleted tenant {domain}");
            }
            Tenant::Limits {
                domain,
                limits,
                manager,
            } => {
                let client = manager.client()?;
                let path = format!("/tenants/{domain}/limits");
                let req = client.request(Method::PUT, &path).json(&limits.patch());
                let t: TenantInfo = client.block(client.send(req))?;
                show(&t);
            }
            Tenant::Config {
                domain,
                values,
                manager,
            } => {
                let mut env = BTreeMap::new();
                for v in &values {
                    let (k, val) = v
                        .split_once('=')
                        .ok_or_else(|| anyhow::anyhow!("{v:?} is not NAME=VALUE"))?;
                    env.insert(k.to_string(), val.to_string());
                }
                let client = manager.client()?;
                let path = format!("/tenants/{domain}/config");
                let req = client
                    .request(Method::PUT, &path)
                    .json(&TenantConfig { env });
                let t: TenantInfo = client.block(client.send(req))?;
                show(&t);
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
