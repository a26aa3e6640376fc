//! Every fixture builds into a component that exports the HTTP handler.

use wharf_testkit::fixtures;

#[test]
fn every_fixture_is_a_proxy_component() {
    for (name, bytes) in [
        ("hello", fixtures::hello()),
        ("hello_v2", fixtures::hello_v2()),
        ("echo", fixtures::echo()),
        ("trap", fixtures::trap()),
        ("loop", fixtures::endless_loop()),
        ("memhog", fixtures::memory_hog()),
        ("chatty", fixtures::chatty()),
        ("sleepy", fixtures::sleepy()),
    ] {
        assert!(
            wasmparser::Parser::is_component(&bytes),
            "{name} is not a component"
        );
        let decoded = wit_component::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let resolve = decoded.resolve();
        let world = match &decoded {
            wit_component::DecodedWasm::Component(_, w) => &resolve.worlds[*w],
            _ => panic!("{name} decoded as a WIT package"),
        };
        let exports: Vec<String> = world
            .exports
            .keys()
            .map(|k| resolve.name_world_key(k))
            .collect();
        assert!(
            exports
                .iter()
                .any(|e| e.starts_with("wasi:http/incoming-handler@0.2")),
            "{name} exports {exports:?}"
        );
    }
    assert!(!wasmparser::Parser::is_core_wasm(&fixtures::no_handler()));
}
