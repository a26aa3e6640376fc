//! `wasi:http/proxy` components built from hand-written core WAT.
//!
//! Used by the test kit (fixtures), by the `wharf` build (the embedded
//! example application) and by the `wat2component` tool.
//!
//! The WASI WIT that the component's type metadata needs is read from the
//! source of the `wasmtime-wasi-http` crate in cargo's registry, the same
//! version the runtime links, so guest and host always agree.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::sync::OnceLock;
use wit_component::{ComponentEncoder, StringEncoding};
use wit_parser::Resolve;

/// The `wasmtime-wasi-http` release whose WIT we build against.
const WASI_HTTP_CRATE: &str = "wasmtime-wasi-http-48.0.8";

/// Finds `wit/` inside the `wasmtime-wasi-http` crate's source.
pub fn wit_dir() -> Result<PathBuf> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    let src = cargo_home.join("registry").join("src");
    for index in std::fs::read_dir(&src).with_context(|| format!("reading {}", src.display()))? {
        let candidate = index?.path().join(WASI_HTTP_CRATE).join("wit");
        if candidate.join("deps").is_dir() {
            return Ok(candidate);
        }
    }
    bail!(
        "{WASI_HTTP_CRATE} is not in {}: run `cargo fetch` first",
        src.display()
    )
}

fn resolve() -> Result<&'static (Resolve, wit_parser::WorldId)> {
    static RESOLVE: OnceLock<std::result::Result<(Resolve, wit_parser::WorldId), String>> =
        OnceLock::new();
    RESOLVE
        .get_or_init(|| {
            let load = || -> Result<_> {
                let mut resolve = Resolve::default();
                resolve.push_dir(wit_dir()?)?;
                // `wasi:http/proxy` plus the `wasi:cli` interfaces real
                // toolchains import too (see DESIGN.md): a component gets
                // only the imports its module uses.
                let pkg = resolve.push_str(
                    "wharf-guest.wit",
                    "package wharf:guest;\n\
                     world guest {\n\
                       include wasi:http/proxy@0.2.12;\n\
                       import wasi:cli/environment@0.2.12;\n\
                     }\n",
                )?;
                let world = resolve.select_world(&[pkg], Some("guest"))?;
                Ok((resolve, world))
            };
            load().map_err(|e| format!("{e:#}"))
        })
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Turns a core module in WAT, written against the canonical ABI of the
/// `wasi:http/proxy` world, into a validated component.
pub fn component_from_wat(wat: &str) -> Result<Vec<u8>> {
    let (resolve, world) = resolve()?;
    let mut module = wat::parse_str(wat).context("parsing WAT")?;
    wit_component::embed_component_metadata(&mut module, resolve, *world, StringEncoding::UTF8)?;
    let component = ComponentEncoder::default()
        .validate(true)
        .module(&module)?
        .encode()
        .context("encoding the component")?;
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(&component)
        .context("validating the component")?;
    Ok(component)
}
