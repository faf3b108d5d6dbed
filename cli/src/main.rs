//! The `errand` binary; everything is in the library (see its docs or
//! `errand --help`).

fn main() -> std::process::ExitCode {
    errand_cli::main()
}
