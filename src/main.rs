//! The `tocsin` command: thin, it parses arguments and hands over to the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    tocsin::cli::main()
}
