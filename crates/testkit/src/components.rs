//! The test applications, built from WAT at test time.

pub use wharf_componentize::{component_from_wat, wit_dir};

/// The test applications. Each is built once per process.
pub mod fixtures {
    use std::sync::OnceLock;

    macro_rules! fixture {
        ($(#[$doc:meta])* $name:ident, $file:literal) => {
            $(#[$doc])*
            pub fn $name() -> Vec<u8> {
                static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
                BYTES
                    .get_or_init(|| {
                        super::component_from_wat(include_str!(concat!("wat/", $file)))
                            .unwrap_or_else(|e| panic!("building {}: {e:#}", $file))
                    })
                    .clone()
            }
        };
    }

    fixture!(
        /// Answers every request with `200` and `hello from wasm\n`.
        hello, "hello.wat");
    fixture!(
        /// Answers `200`; headers `x-echo-method`, `x-echo-path` (path and
        /// query), `x-echo-context` (the context path header) and
        /// `x-echo-h-<name>` for every request header; the body is the
        /// request body, streamed back chunk by chunk.
        echo, "echo.wat");
    fixture!(
        /// Executes `unreachable` on every request.
        trap, "trap.wat");
    fixture!(
        /// Loops forever on every request (time limits).
        endless_loop, "loop.wat");
    fixture!(
        /// Grows memory until it fails, then traps (memory limits).
        memory_hog, "memhog.wat");
    fixture!(
        /// Answers `200` with `version two\n`; a second, different app.
        hello_v2, "hello_v2.wat");
    fixture!(
        /// Writes a line to stdout and one to stderr, then answers like hello.
        chatty, "chatty.wat");
    fixture!(
        /// Answers `200` with its environment (`wasi:cli/environment`),
        /// one `NAME=value` line per variable.
        env, "env.wat");
    fixture!(
        /// Answers after sleeping the number of milliseconds in the query
        /// (`?ms=N`) using `wasi:clocks/monotonic-clock`, then `slept\n`.
        sleepy, "sleepy.wat");

    /// An application that answers `200` with `text` (ASCII, at most 200
    /// bytes): a distinct component for every text, for telling revisions
    /// apart.
    pub fn says(text: &str) -> Vec<u8> {
        assert!(text.is_ascii() && text.len() <= 200);
        let escaped: String = text.bytes().map(|b| format!("\\{b:02x}")).collect();
        let wat = include_str!("wat/hello_v2.wat")
            .replace("\"version two\\0a\"", &format!("\"{escaped}\""))
            .replace(
                "(i32.const 16) (i32.const 12)",
                &format!("(i32.const 16) (i32.const {})", text.len()),
            );
        super::component_from_wat(&wat).unwrap_or_else(|e| panic!("building says({text:?}): {e:#}"))
    }

    /// A valid component that exports nothing (the wrong world).
    pub fn no_handler() -> Vec<u8> {
        wat::parse_str("(component)").expect("empty component")
    }
}
