//! `wharf`: the command-line entry point. Parse, then hand over to one
//! subcommand; each lives in its own file under `commands/`.

mod commands;
mod example;
mod logging;

use clap::Parser;

/// mimalloc: the proxy and the node allocate many small, short-lived
/// buffers per request on several threads (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Wharf: a clustered application server for WebAssembly web applications.
///
/// A cluster is a load balancer in front of a management node, where
/// applications (wasi:http components) are deployed, and worker nodes that
/// serve them.
#[derive(Parser, Debug)]
#[command(name = "wharf", version, propagate_version = true)]
struct Cli {
    /// Log format on standard error.
    #[arg(long, global = true, value_enum, default_value_t = logging::Format::Text, env = "WHARF_LOG_FORMAT")]
    log_format: logging::Format,

    #[command(subcommand)]
    command: commands::Command,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    match cli.command.run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn verify_cli() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
