//! `wat2component IN.wat OUT.wasm`: build a wasi:http/proxy component from a
//! core module written in WAT against the canonical ABI.

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        anyhow::bail!("usage: wat2component IN.wat OUT.wasm");
    };
    let wat =
        std::fs::read_to_string(input).map_err(|e| anyhow::anyhow!("reading {input}: {e}"))?;
    let component = wharf_componentize::component_from_wat(&wat)?;
    std::fs::write(output, &component).map_err(|e| anyhow::anyhow!("writing {output}: {e}"))?;
    eprintln!("wrote {output} ({} bytes)", component.len());
    Ok(())
}
