//! Builds the example application (examples/greeter) into a component that
//! the binary embeds, so `wharf server --deploy-example` (and the local
//! cluster) has an application to serve with nothing else installed.

fn main() {
    // Read at run time: a build script compiled in another checkout (a
    // shared target directory) must still look in this one.
    let dir = std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let src = std::path::Path::new(&dir).join("../../examples/greeter/greeter.wat");
    println!("cargo:rerun-if-changed={}", src.display());
    let wat =
        std::fs::read_to_string(&src).unwrap_or_else(|e| panic!("reading {}: {e}", src.display()));
    let component = wharf_componentize::component_from_wat(&wat)
        .unwrap_or_else(|e| panic!("building the example application: {e:#}"));
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"))
        .join("greeter.wasm");
    std::fs::write(&out, component).expect("writing greeter.wasm");
}
