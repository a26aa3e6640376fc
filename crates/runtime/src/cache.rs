//! Compiled code cached on disk by content hash, so a restart or a
//! redeploy of bytes seen before does not compile again.
//!
//! A cache file is `sha256(payload) ‖ payload`, where the payload is
//! wasmtime's serialized component. The checksum is verified before the
//! payload is handed to `Component::deserialize`, so a torn or corrupted file
//! is recompiled rather than trusted. The file name joins the component's
//! hash with the engine's compatibility hash: a wasmtime upgrade or a change
//! of engine settings simply misses the cache.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;
use wasmtime::Engine;

pub(crate) struct Compiled {
    pub component: Component,
    pub from_cache: bool,
}

pub(crate) fn compile(
    engine: &Engine,
    cache_dir: &Path,
    sha256: &str,
    bytes: &[u8],
) -> Result<Compiled, String> {
    let path = cache_path(engine, cache_dir, sha256);
    if let Some(component) = read(engine, &path) {
        return Ok(Compiled {
            component,
            from_cache: true,
        });
    }
    let component = Component::new(engine, bytes).map_err(|e| format!("{e:#}"))?;
    if let Err(e) = write(&component, &path) {
        tracing::warn!(path = %path.display(), error = %e, "cannot write compiled code to the cache");
    }
    Ok(Compiled {
        component,
        from_cache: false,
    })
}

fn cache_path(engine: &Engine, dir: &Path, sha256: &str) -> PathBuf {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    dir.join(format!("{sha256}-{:016x}.cwasm", h.finish()))
}

fn read(engine: &Engine, path: &Path) -> Option<Component> {
    let data = std::fs::read(path).ok()?;
    if data.len() < 32 || Sha256::digest(&data[32..]).as_slice() != &data[..32] {
        tracing::warn!(path = %path.display(), "discarding a corrupt compiled-code cache entry");
        let _ = std::fs::remove_file(path);
        return None;
    }
    // SAFETY: `Component::deserialize` trusts its input to be wasmtime's own
    // serialization. This file was written by `write` below for this engine
    // (the name carries the engine's compatibility hash), lives in the
    // node's private data directory, and its checksum was just verified.
    #[allow(unsafe_code)]
    let component = unsafe { Component::deserialize(engine, &data[32..]) };
    match component {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %format!("{e:#}"), "discarding an unusable cache entry");
            let _ = std::fs::remove_file(path);
            None
        }
    }
}

fn write(component: &Component, path: &Path) -> std::io::Result<()> {
    let payload = component
        .serialize()
        .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
    let mut data = Sha256::digest(&payload).to_vec();
    data.extend_from_slice(&payload);
    // Write beside, then rename: readers see the old file or the whole new one.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, &data)?;
    std::fs::rename(&tmp, path)
}
