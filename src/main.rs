//! The `tocsin` command: thin, it parses arguments and hands over to the library.

use std::process::ExitCode;

/// The server's allocator: jemalloc, configured (`.cargo/config.toml`) to give memory freed after a
/// burst back to the OS within about a second. Why: ARCHITECTURE.md, "Memory".
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    tocsin::cli::main()
}
