//! The example application embedded in the binary (examples/greeter).

use std::path::Path;

/// `greeter.wasm`, built from `examples/greeter/greeter.wat` by build.rs.
pub const GREETER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/greeter.wasm"));

/// Puts the example into `webapps` as `greeter.wasm` unless a file of that
/// name is there already (an operator's version wins). Written under a
/// hidden name and renamed, so the hot deployer never sees half a file.
pub fn install(webapps: &Path) -> std::io::Result<bool> {
    let target = webapps.join("greeter.wasm");
    if target.exists() {
        return Ok(false);
    }
    std::fs::create_dir_all(webapps)?;
    let tmp = webapps.join(".greeter.wasm.tmp");
    std::fs::write(&tmp, GREETER)?;
    std::fs::rename(&tmp, &target)?;
    Ok(true)
}
