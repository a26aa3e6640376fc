//! `wharf config check`: validate a configuration file.

use std::path::PathBuf;
use std::process::ExitCode;
use wharf_config::NodeConfig;

#[derive(clap::Subcommand, Debug)]
pub enum Config {
    /// Validate a node configuration file: print every error as
    /// file:key: message and exit 1, or print "ok" and exit 0.
    Check {
        /// The file to check.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
}

impl Config {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Config::Check { config } => {
                match NodeConfig::load_with_env(&config, &super::config_env()) {
                    Ok(_) => {
                        println!("{}: ok", config.display());
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(errs) => {
                        for e in errs.iter() {
                            println!("{e}");
                        }
                        Ok(ExitCode::FAILURE)
                    }
                }
            }
        }
    }
}
