//! Fuzzes the loadbalancer.conf parser: any input must give a value or an
//! error with a position inside the input, never a panic or a hang.
//!
//! Run with `cargo +nightly fuzz run lbconf` from `crates/config`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wharf_config::lbconf::Services;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = Services::parse(text, "fuzz.conf") {
            let lines = text.lines().count().max(1) as u32 + 1;
            assert!(e.pos.line >= 1 && e.pos.line <= lines, "{e}");
        }
    }
});
