//! Builds the example application (examples/greeter) into a component that
//! the binary embeds, so `wharf server --deploy-example` (and the local
//! cluster) has an application to serve with nothing else installed.

fn main() {
    let src =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/greeter/greeter.wat");
    println!("cargo:rerun-if-changed={}", src.display());
    let wat =
        std::fs::read_to_string(&src).unwrap_or_else(|e| panic!("reading {}: {e}", src.display()));
    let component = wharf_componentize::component_from_wat(&wat)
        .unwrap_or_else(|e| panic!("building the example application: {e:#}"));
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"))
        .join("greeter.wasm");
    std::fs::write(&out, component).expect("writing greeter.wasm");
}
